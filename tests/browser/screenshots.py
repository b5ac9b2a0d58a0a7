"""Screenshots of every web page, for the docs: `make screenshots`, or
`.venv/bin/python -m tests.browser.screenshots [--out docs/screenshots]`.

Starts `csp-tracker serve` on a fresh SQLite store with the demo, signs in with the demo
fabrikam account admin's key (the auditor's for the audit page), and saves full-page PNGs at
1280 px, and the pipeline and a migration at phone width (390 px)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    PageLog,
    flagged_migration,
    new_page,
    sign_in,
)
from tests.conftest import sqlite_env
from tests.server import Server, serving

ROOT = Path(__file__).resolve().parents[2]
PARTNER_KEY = "demo-fabrikam-account"
AUDITOR_KEY = "demo-auditor"


def _shoot(
    page: Any, url: str, path: Path, wait_for: str | None = None, *, full: bool = True
) -> None:
    """The page at `url`, whole (`full`), or its first 1,600 px: a long table's top tells."""
    page.goto(url)
    if wait_for:
        page.wait_for_selector(wait_for, timeout=20_000)
    if full:
        page.screenshot(path=str(path), full_page=True)
    else:
        width = page.viewport_size["width"]
        page.screenshot(
            path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": 1600}
        )
    print(f"  {path}")


def take(server: Server, browser: Any, out: Path) -> list[str]:
    """Every screenshot into `out`; returns what the pages did wrong (requests off 127.0.0.1,
    console errors)."""
    out.mkdir(parents=True, exist_ok=True)
    log = PageLog()
    url = server.url
    migration = flagged_migration(server, PARTNER_KEY)

    page = new_page(browser, log, DESKTOP)
    _shoot(page, f"{url}/signin", out / "signin.png")
    sign_in(page, server, PARTNER_KEY)
    _shoot(page, f"{url}/pipeline", out / "pipeline.png")
    _shoot(page, f"{url}/deadlines", out / "deadlines.png")
    _shoot(page, f"{url}/migrations", out / "migrations.png", full=False)
    _shoot(page, f"{url}/migrations/{migration}", out / "migration.png")
    _shoot(page, f"{url}/docs", out / "docs.png", wait_for=".opblock", full=False)
    page.set_viewport_size(PHONE)
    _shoot(page, f"{url}/pipeline", out / "pipeline-phone.png")
    _shoot(page, f"{url}/migrations/{migration}", out / "migration-phone.png")
    page.context.close()

    auditor = new_page(browser, log, DESKTOP)
    sign_in(auditor, server, AUDITOR_KEY)
    _shoot(auditor, f"{url}/audit", out / "audit.png", full=False)
    auditor.context.close()
    return [f"left 127.0.0.1: {u}" for u in log.external()] + log.errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="csp-screenshots-") as tmp:
        work = Path(tmp)
        with serving(sqlite_env(work / "tracker.db"), work / "server") as server:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    print(f"Screenshots of {server.url} into {args.out}:")
                    problems = take(server, browser, args.out)
                finally:
                    browser.close()
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
