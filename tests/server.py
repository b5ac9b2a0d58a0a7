"""`csp-tracker serve` as a real process on loopback, with the demo loaded: for the end-to-end
tests (tests/api/test_e2e.py), the browser tests (tests/browser) and the screenshots script.

Each server gets its own working directory with its own ledger key and session key, so
servers never share a file with each other or with the checkout."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.server import free_port, settings_env

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
# `serve` prints the demo's keys once, on its first start: `  demo-auditor   csp_…`.
KEY_LINE = re.compile(r"^\s+(demo-\S+)\s+(csp_\S+)$", re.M)


class Server:
    """A running `csp-tracker serve`: its URL, its printed output, the environment it runs in."""

    def __init__(self, url: str, output: Path, env: dict[str, str], workdir: Path) -> None:
        self.url, self.output, self.env, self.workdir = url, output, env, workdir

    def keys(self) -> dict[str, str]:
        """The demo's API keys, by name (`demo-fabrikam-account`, `demo-auditor`, …)."""
        return dict(KEY_LINE.findall(self.output.read_text()))

    def client(self, key_name: str | None = None) -> httpx.Client:
        """An httpx client on this server, with the bearer token of the demo key `key_name`
        (None: unauthenticated). Use it as a context manager."""
        headers = {} if key_name is None else {"Authorization": f"Bearer {self.keys()[key_name]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`csp-tracker <args>` on the same store and key files as the server."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /readyz is 200 and every view has caught up with the store (the pages read
        the views: the demo must be in them before a page is looked at)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                response = client.get("/readyz")
                if response.status_code == 200 and not any(
                    v["lag"] for v in response.json()["views"].values()
                ):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"views did not catch up: {response.text}")
                time.sleep(0.1)


def server_env(store_env: dict[str, str], workdir: Path) -> dict[str, str]:
    """The environment of a server on `store_env` whose key files are in `workdir`."""
    return {
        **os.environ,
        **settings_env(store_env),
        "CSP_TRACKER_LEDGER_KEY": str(workdir / "ledger.key"),
        "CSP_TRACKER_SESSION_KEY": str(workdir / "session.key"),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


@contextlib.contextmanager
def serving(
    store_env: dict[str, str], workdir: Path, *, start_timeout: float = START_TIMEOUT
) -> Iterator[Server]:
    """`python -m api.cli serve` on a free loopback port until /healthz answers; always
    stopped afterwards. Raises RuntimeError (with the server's output) when it does not start."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = server_env(store_env, workdir)
    output = workdir / "serve.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{output.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{output.read_text()}")
            time.sleep(0.1)
        yield Server(url, output, env, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
