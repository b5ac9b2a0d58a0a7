"""Run the API as a real uvicorn process on loopback for benchmarks and fault tests, and
measure it under load: `wrk` with bench/events.lua, the server's CPU time from /proc, the
store's head and the views' lag."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from projections.heads import Signer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("events.lua")
CATCH_UP_TIMEOUT = 300.0


def wrk_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every wrk-driven bench takes (store, segment length, runs, connections,
    target migrations), and the check that wrk is installed."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--migrations", type=int, default=100)
    return parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(store_env: dict[str, str]) -> dict[str, str]:
    """CSP_TRACKER_* variables selecting the store described by an eventsourcing env."""
    if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return {
            "CSP_TRACKER_STORE": "sqlite",
            "CSP_TRACKER_SQLITE_PATH": store_env["SQLITE_DBNAME"],
            # The ledger's signing key beside the store file, never in the working directory.
            "CSP_TRACKER_LEDGER_KEY": store_env["SQLITE_DBNAME"] + ".ledger.key",
        }
    return {
        "CSP_TRACKER_STORE": "postgres",
        "CSP_TRACKER_POSTGRES_HOST": store_env["POSTGRES_HOST"],
        "CSP_TRACKER_POSTGRES_PORT": store_env["POSTGRES_PORT"],
        "CSP_TRACKER_POSTGRES_DB": store_env["POSTGRES_DBNAME"],
        "CSP_TRACKER_POSTGRES_USER": store_env["POSTGRES_USER"],
        "CSP_TRACKER_POSTGRES_PASSWORD": store_env["POSTGRES_PASSWORD"],
        "CSP_TRACKER_POSTGRES_SCHEMA": store_env["POSTGRES_SCHEMA"],
        "CSP_TRACKER_LEDGER_KEY": str(
            Path(tempfile.gettempdir()) / f"csp-tracker-{store_env['POSTGRES_SCHEMA']}.key"
        ),
    }


@contextlib.contextmanager
def serving(
    store_env: dict[str, str],
    *,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    log: Path | None = None,
    start_timeout: float = 30.0,
    root: Path = ROOT,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start uvicorn serving api.app:create_app on a free loopback port; always stopped.

    `root` is the checkout whose code it serves (another worktree, to compare two versions)."""
    port = free_port()
    key = Path(settings_env(store_env)["CSP_TRACKER_LEDGER_KEY"])
    if not key.exists():
        Signer.generate(key)
    env = {
        **os.environ,
        **settings_env(store_env),
        "CSP_TRACKER_DEMO_ON_EMPTY": "false",
        "PYTHONPATH": str(root),
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    out = open(log or os.devnull, "ab")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.1)
        yield url, proc
    finally:
        stop(proc)
        out.close()


@contextlib.contextmanager
def projecting(store_env: dict[str, str], root: Path = ROOT) -> Iterator[subprocess.Popen]:
    """A `csp-tracker project` process of its own (the scale-out deployment's projector, beside
    API processes started with CSP_TRACKER_RUN_PROJECTIONS=false); always stopped."""
    env = {**os.environ, **settings_env(store_env), "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "api.cli", "project"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants: its own (fields 14 and
    15 of /proc/<pid>/stat), its waited-for children's (16 and 17), and its live children's."""
    try:
        fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # it ended meanwhile (its parent's fields 16 and 17 count it once reaped)
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(c) for c in _children(pid))


def _stat(pid: int) -> list[str]:
    # After the command name, which may hold spaces: field 3 (state) is the first.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


def wrk(url: str, script_args: Sequence[str], seconds: float, connections: int) -> dict[str, Any]:
    """Run `wrk -t1` with bench/events.lua for `seconds`; its RESULT line as a dict (requests,
    duration_us, statuses, errors, p50_ms, p90_ms, p99_ms, p999_ms, max_ms)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{round(seconds)}s",
        "--timeout",
        "60s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        *script_args,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {run.stdout[-2000:]} {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def stored_events(tracker: Any) -> int:
    """The store's head (highest notification id)."""
    return tracker.recorder.max_notification_id() or 0


def quiet(tracker: Any, still: float = 2.0) -> tuple[int, float]:
    """The store's head once it has not moved for `still` seconds, and when it last moved
    (time.monotonic()): requests wrk left in flight when it stopped (the server finishes them)
    land in the segment that sent them."""
    head, since, start = stored_events(tracker), time.monotonic(), time.monotonic()
    while time.monotonic() - since < still:
        time.sleep(0.05)
        now = stored_events(tracker)
        if now != head:
            head, since = now, time.monotonic()
        if time.monotonic() - start > CATCH_UP_TIMEOUT:
            raise TimeoutError("the store kept growing after the load stopped")
    return head, since


def caught_up(http: httpx.Client, token: str) -> float:
    """Seconds until every view has processed the store's head (GET /readyz)."""
    start = time.monotonic()
    while True:
        body = http.get("/readyz", headers={"Authorization": f"Bearer {token}"}).json()
        if not any(view["lag"] for view in body.get("views", {}).values()):
            return time.monotonic() - start
        if time.monotonic() - start > CATCH_UP_TIMEOUT:
            raise TimeoutError(f"the views did not catch up: {body}")
        time.sleep(0.05)


def measure(
    url: str,
    pid: int | Sequence[int],
    tracker: Any,
    token: str,
    script_args: Sequence[str],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """One wrk run against the server `pid`, after the views have caught up: wrk's result, and
    `seconds` (wrk's duration), `landed` (events the store gained, the requests left in flight
    when wrk stopped included), `landed_seconds` (from the start until the last of them
    landed), `server_cpu_seconds` (until the store is quiet and the views have caught up) and
    `catch_up_seconds`."""
    with httpx.Client(base_url=url, timeout=30) as http:
        caught_up(http, token)
        pids = [pid] if isinstance(pid, int) else list(pid)  # the server's processes
        before, cpu_before = stored_events(tracker), sum(cpu_seconds(p) for p in pids)
        started = time.monotonic()
        result = wrk(url, script_args, seconds, connections)
        after, last = quiet(tracker)
        catch_up = caught_up(http, token)
        cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
    return {
        **result,
        "seconds": result["duration_us"] / 1e6,
        "landed": after - before,
        "landed_seconds": last - started,
        "server_cpu_seconds": cpu,
        "catch_up_seconds": catch_up,
    }
