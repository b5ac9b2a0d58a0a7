"""Browser fixtures: the web pages in a real (headless) Chromium, against a real server.

- `server`: `csp-tracker serve` with the demo loaded, on SQLite and on PostgreSQL (through
  `store_env`), its views caught up: `server.url`, `server.keys()` (demo key name -> token),
  `server.client(key_name)` (an httpx.Client with that key as bearer), `server.cli(*args)`.
- `browser`: one Chromium for the whole session: Debian's (`CSP_TRACKER_CHROMIUM`, default
  /usr/bin/chromium), never one Playwright downloads. Without Chromium or Playwright the
  browser tests skip, except under CI=true, where they fail.
- `page`: a fresh context (no cookies) at 1280x800; `make_page(viewport)` makes more.
  `page_log` records every request they make (requests off 127.0.0.1 are recorded, then
  aborted) and every console error: `page_log.assert_local_only()`, `assert_no_errors()`.
- `axe`: axe-core (bundled by axe-playwright-python): `axe.run(page).response`.
- `sign_in(page, server, key_name)`: through the form at /signin, onto /pipeline.
- `flagged_migration(server, key_name)`: the id of the demo migration with most risk flags.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from tests.server import Server, serving

CHROMIUM = os.environ.get("CSP_TRACKER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LOCAL_HOSTS = {"127.0.0.1"}
# Not requests to anywhere: the page's own data and blobs.
LOCAL_SCHEMES = {"data", "blob", "about"}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (browser tests must run when CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Playwright's sync API)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if shutil.which(CHROMIUM) is None:
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class PageLog:
    """What a page did: every URL it requested, and its console errors and uncaught errors."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []

    def external(self) -> list[str]:
        """Requests that went (or tried to go) to a host other than 127.0.0.1."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in LOCAL_SCHEMES
            and urlsplit(url).hostname not in LOCAL_HOSTS
        ]

    def assert_local_only(self) -> None:
        assert self.requests, "no request was recorded"
        assert not self.external(), f"requests left 127.0.0.1: {self.external()}"

    def assert_no_errors(self) -> None:
        assert not self.errors, "console errors:\n" + "\n".join(self.errors)


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


def new_page(browser: Any, log: PageLog, viewport: dict[str, int] = DESKTOP) -> Any:
    """A page in a fresh context (no cookies), wired to `log`; requests off 127.0.0.1 are
    recorded, then aborted (a test never reaches the internet, and never waits for it)."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)

    def route(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda request: log.requests.append(request.url))
    page.on(
        "console",
        lambda message: (
            log.errors.append(f"{message.text} ({message.location.get('url', '')})")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: log.errors.append(f"uncaught: {error}"))
    return page


@pytest.fixture
def make_page(browser: Any, page_log: PageLog) -> Iterator[Callable[..., Any]]:
    """`make_page(viewport=DESKTOP)`: a fresh page in its own context (no cookies), recorded in
    `page_log`; every one made is closed after the test."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        opened = new_page(browser, page_log, viewport)
        contexts.append(opened.context)
        return opened

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(make_page: Callable[..., Any]) -> Any:
    """A fresh 1280x800 page, recorded in `page_log`."""
    return make_page(DESKTOP)


@pytest.fixture
def server(browser: Any, store_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """`csp-tracker serve` on the parametrised store, with the demo, its views caught up.
    (After `browser`: without one, the test skips before a server is started.)"""
    with serving(store_env, tmp_path / "server") as served:
        served.wait_ready()
        yield served


def sign_in(page: Any, server: Server, key_name: str) -> None:
    """Sign in through the form at /signin with the demo key `key_name`; on /pipeline after."""
    page.goto(f"{server.url}/signin")
    page.fill("#key", server.keys()[key_name])
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{server.url}/pipeline")


def flagged_migration(server: Server, key_name: str = "demo-fabrikam-account") -> str:
    """The id of the migration with the most risk flags that `key_name` can see."""
    with server.client(key_name) as client:
        response = client.get("/v1/migrations", params={"limit": 100})
    response.raise_for_status()
    items = response.json()["items"]
    best = max(items, key=lambda item: (len(item["risks"]), item["customer_name"]))
    assert best["risks"], "no demo migration has a risk flag"
    return str(best["id"])


@pytest.fixture(scope="session")
def axe() -> Any:
    """axe-core (the copy axe-playwright-python bundles): `axe.run(page).response`."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        _unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    return Axe()
