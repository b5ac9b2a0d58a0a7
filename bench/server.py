"""Run the API as a real uvicorn process on loopback for benchmarks and fault tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from projections.heads import Signer

ROOT = Path(__file__).resolve().parent.parent


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
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start uvicorn serving api.app:create_app on a free loopback port; always stopped."""
    port = free_port()
    key = Path(settings_env(store_env)["CSP_TRACKER_LEDGER_KEY"])
    if not key.exists():
        Signer.generate(key)
    env = {
        **os.environ,
        **settings_env(store_env),
        "CSP_TRACKER_DEMO_ON_EMPTY": "false",
        "PYTHONPATH": str(ROOT),
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
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
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
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
