"""Every page, in a browser: no serious or critical axe-core violation at desktop and phone
width, no sideways scrolling on a phone, and usable from the keyboard alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import DESKTOP, PHONE, flagged_migration, sign_in
from tests.server import Server

pytestmark = pytest.mark.browser

PARTNER_KEY = "demo-fabrikam-account"
AUDITOR_KEY = "demo-auditor"
BLOCKING = {"serious", "critical"}


def _pages(server: Server) -> list[tuple[str, str]]:
    """(key name, path) of every signed-in page, in the order they are visited."""
    migration = flagged_migration(server, PARTNER_KEY)
    return [
        (PARTNER_KEY, "/pipeline"),
        (PARTNER_KEY, "/deadlines"),
        (PARTNER_KEY, "/migrations"),
        (PARTNER_KEY, f"/migrations/{migration}"),
        (PARTNER_KEY, "/audit"),
        (AUDITOR_KEY, "/audit/verify"),
    ]


def _describe(violation: dict[str, Any]) -> str:
    lines = [f"  {violation['id']} ({violation['impact']}): {violation['help']}"]
    for node in violation["nodes"][:8]:
        summary = " ".join((node.get("failureSummary") or "").split())
        lines.append(f"    - {' '.join(map(str, node['target']))}: {node['html'][:160]}")
        lines.append(f"      {summary[:300]}")
    if len(violation["nodes"]) > 8:
        lines.append(f"    … and {len(violation['nodes']) - 8} more elements")
    return "\n".join(lines)


def _check(page: Any, axe: Any, label: str, phone: bool, problems: list[str]) -> None:
    """axe-core on the page as shown (every <details> opened, so its forms are checked too);
    at phone width, also no horizontal overflow."""
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    found = axe.run(page).response["violations"]
    blocking = [v for v in found if v["impact"] in BLOCKING]
    if blocking:
        problems.append(f"{label}:\n" + "\n".join(_describe(v) for v in blocking))
    others = [f"{v['id']} ({v['impact']})" for v in found if v["impact"] not in BLOCKING]
    if others:
        print(f"{label}: also {', '.join(others)}")
    if phone:
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth,"
            " [...document.querySelectorAll('body *')]"
            "   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1"
            "     && !e.closest('.table-wrap'))"
            "   .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ?"
            "     '.' + String(e.className).trim().split(/\\s+/).join('.') : ''))]"
        )
        scroll, inner, wide = widths
        if scroll > inner + 1:
            problems.append(
                f"{label}: the page scrolls sideways ({scroll}px wide in a {inner}px window);"
                f" wider than the window: {wide}"
            )


def test_no_serious_axe_violations_and_no_overflow_on_a_phone(server, make_page, axe):
    """Each page at 1280 px, then again at phone width (390x844); every problem is reported."""
    problems: list[str] = []
    pages: dict[str | None, Any] = {}
    visits = [(None, "/signin"), *_pages(server)]
    for viewport in (DESKTOP, PHONE):
        size = f"{viewport['width']}x{viewport['height']}"
        for key_name, path in visits:
            if key_name not in pages:
                pages[key_name] = make_page(viewport)
                if key_name is not None:
                    sign_in(pages[key_name], server, key_name)
            page = pages[key_name]
            page.set_viewport_size(viewport)
            response = page.goto(f"{server.url}{path}")
            assert response.status == 200, f"{path}: {response.status}"
            label = f"{path} as {key_name or 'nobody'} at {size}"
            _check(page, axe, label, viewport == PHONE, problems)
    assert not problems, "accessibility problems:\n" + "\n".join(problems)


def _focused(page: Any) -> dict[str, Any]:
    return page.evaluate(
        "(() => { const e = document.activeElement; const r = e.getBoundingClientRect();"
        " return {tag: e.tagName.toLowerCase(), id: e.id, cls: String(e.className),"
        " text: (e.innerText || '').trim(), inMain: !!e.closest('main'),"
        " visible: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0"
        "   && r.right <= window.innerWidth}; })()"
    )


def _skip_link_first(page: Any, label: str) -> None:
    """From the top of a freshly loaded page: Tab lands on a visible "Skip to content" link,
    and Enter on it takes the next Tab into <main>."""
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["text"] == "Skip to content", f"{label}: the first Tab reached {first}"
    assert first["visible"], f"{label}: the focused skip link is not on screen: {first}"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    after = _focused(page)
    assert after["inMain"], f"{label}: after the skip link, Tab reached {after}"


def test_keyboard_only(server, page):
    # Sign in without a mouse: Tab to the key field, type, Tab to the button, Enter.
    page.goto(f"{server.url}/signin")
    _skip_link_first(page, "/signin")
    page.goto(f"{server.url}/signin")
    for _ in range(10):
        page.keyboard.press("Tab")
        if _focused(page)["id"] == "key":
            break
    else:
        pytest.fail("Tab never reached the API key field of /signin")
    page.keyboard.type(server.keys()[PARTNER_KEY])
    page.keyboard.press("Tab")
    button = _focused(page)
    assert (button["tag"], button["text"]) == ("button", "Sign in"), button
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/pipeline")

    for key_name, path in _pages(server):
        if key_name != PARTNER_KEY:
            continue
        page.goto(f"{server.url}{path}")
        _skip_link_first(page, path)


def test_the_checks_catch_planted_problems(make_page, page_log, axe):
    """The checks above can fail: a page with known faults is reported with each of them."""
    page = make_page(PHONE)
    page.set_content(
        """<!doctype html><html lang="en"><head><title>faulty</title></head><body>
        <main><p style="color:#bbb;background:#fff">faint text</p>
        <img src="https://cdn.example.com/logo.png">
        <div style="width:900px">too wide for a phone</div></main></body></html>"""
    )
    problems: list[str] = []
    _check(page, axe, "planted", True, problems)
    report = "\n".join(problems)
    assert "color-contrast (serious)" in report, report
    assert "image-alt (critical)" in report, report
    assert "scrolls sideways" in report, report
    assert page_log.external() == ["https://cdn.example.com/logo.png"]
    with pytest.raises(AssertionError, match=r"left 127\.0\.0\.1"):
        page_log.assert_local_only()
