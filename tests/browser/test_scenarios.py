"""What a partner's operations staff and an auditor do in the web pages, in a real Chromium
against a real server with the demo, on both stores."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from tests.browser.conftest import flagged_migration, sign_in
from tests.server import Server

ACCOUNT = "demo-fabrikam-account"


def _numbers(page: Any, selector: str, attribute: str) -> dict[str, int]:
    return {
        element.get_attribute(attribute): int(element.inner_text())
        for element in page.query_selector_all(selector)
    }


def test_sign_in_and_the_pipeline_counts_match_the_summary(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/")
    assert page.url == f"{server.url}/signin?next=%2Fpipeline" or page.url.startswith(
        f"{server.url}/signin"
    )
    sign_in(page, server, ACCOUNT)
    with server.client(ACCOUNT) as client:
        summary = client.get("/v1/dashboard/summary").json()["overall"]
    stages = _numbers(page, "[aria-label='Migrations by stage'] .num", "data-key")
    assert stages == {s: n for s, n in summary["stages"].items() if s != "abandoned"}
    risks = _numbers(page, "[data-risk]", "data-risk")
    assert risks == {r: n for r, n in summary["risks"].items() if n}
    assert _numbers(page, "[data-ending]", "data-ending") == summary["ending_unreplaced"]
    licenses = _numbers(page, "[aria-label^='Licenses'] .num", "data-key")
    assert licenses == summary["licenses"]
    # A flag's count links to the migrations that have it.
    risk, count = next(iter(risks.items()))
    page.click(f"a[href*='risk={risk}']")
    assert page.locator("#migrations tbody tr").count() == count


def test_a_risky_migration_shows_its_flags_and_next_action_and_takes_a_note(
    page: Any, server: Server
) -> None:
    mid = flagged_migration(server, ACCOUNT)
    with server.client(ACCOUNT) as client:
        expected = client.get(f"/v1/migrations/{mid}").json()
    sign_in(page, server, ACCOUNT)
    page.goto(f"{server.url}/migrations/{mid}")
    shown = [b.get_attribute("title") for b in page.query_selector_all("h1 ~ p .badge[title]")]
    assert sorted(shown) == expected["risks"]
    first = expected["next_actions"][0]
    action = page.locator("[aria-labelledby='next-h'] .actions li").first
    assert first["text"][1:] in action.inner_text()
    assert ("Urgent" in action.inner_text()) == first["urgent"]
    # Record a note through the form, keyboard and all.
    page.click("summary:has-text('Add a note')")
    page.fill("#note_added-text", "Called the Global admin about the shortfall")
    page.click("form[aria-label='note added'] button[type=submit]")
    page.wait_for_url(re.compile(r".*recorded=note_added.*"))
    assert page.locator("[role=status]").inner_text() == "Recorded: note added."
    assert "Called the Global admin about the shortfall" in page.locator("#history").inner_text()
    with server.client("demo-auditor") as client:
        rows = client.get("/v1/audit", params={"migration_id": mid, "order": "desc"}).json()
    note = rows["items"][0]
    assert (note["event_type"], note["principal"], note["role"]) == (
        "note_added",
        ACCOUNT,
        "account_admin",
    )


def test_the_audit_log_filters_and_downloads_csv(page: Any, server: Server) -> None:
    sign_in(page, server, "demo-auditor")
    page.goto(f"{server.url}/audit")
    assert page.locator("#signed-head").is_visible()
    page.select_option("#event_type", "invitation_accepted")
    page.click("form[aria-label='Filter the audit log'] button[type=submit]")
    page.wait_for_url(re.compile(r".*event_type=invitation_accepted.*"))
    events = {e.get_attribute("data-event") for e in page.query_selector_all("#audit tbody tr")}
    assert events == {"invitation_accepted"}
    with server.client("demo-auditor") as client:
        listed = client.get(
            "/v1/audit", params={"event_type": "invitation_accepted", "limit": 500}
        ).json()["items"]
    assert f"{len(listed)} matching rows" in page.locator("#audit-count").inner_text()
    with page.expect_download() as download:
        page.click("text=Export CSV")
    path = download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert download.value.suggested_filename == "audit.csv"
    assert len(rows) == len(listed)
    assert {r["event_type"] for r in rows} == {"invitation_accepted"}
    assert sorted(int(r["position"]) for r in rows) == sorted(r["position"] for r in listed)


def _calendar_items(text: str) -> list[tuple[str, str]]:
    """(migration id, date) of each VEVENT of an iCalendar body (lines unfolded)."""
    unfolded = re.sub(r"\r\n ", "", text)
    found = []
    for event in unfolded.split("BEGIN:VEVENT")[1:]:
        day = re.search(r"DTSTART;VALUE=DATE:(\d{8})", event)
        link = re.search(r"URL:\S*/migrations/([0-9a-f-]{36})", event)
        assert day and link, event
        d = day.group(1)
        found.append((link.group(1), f"{d[:4]}-{d[4:6]}-{d[6:]}"))
    return found


def test_the_deadlines_page_and_the_calendar_feed_list_the_same_items(
    page: Any, server: Server
) -> None:
    sign_in(page, server, ACCOUNT)
    page.click("nav >> text=Deadlines")
    page.select_option("#within_days", "365")
    page.click("form[aria-label='Filter deadlines'] button[type=submit]")
    page.wait_for_url(re.compile(r".*within_days=365.*"))
    rows = page.query_selector_all("#deadlines tbody tr")
    shown = [(r.get_attribute("data-migration"), r.get_attribute("data-date")) for r in rows]
    assert shown, "the demo has deadlines"
    with server.client(ACCOUNT) as client:
        feed = client.get("/v1/deadlines.ics", params={"within_days": 365})
    assert feed.headers["content-type"].startswith("text/calendar")
    assert sorted(shown) == sorted(_calendar_items(feed.text))
    # Each item links to its migration.
    first = rows[0].query_selector("a")
    assert first is not None
    first.click()
    page.wait_for_url(re.compile(r".*/migrations/[0-9a-f-]{36}$"))
    assert page.locator("#next-h").is_visible()


def test_reading_and_recording_work_without_javascript(browser: Any, server: Server) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 800}
    )
    try:
        page = context.new_page()
        sign_in(page, server, ACCOUNT)
        assert page.locator("#att-h").is_visible()
        # A filter form submits with its button alone (app.js would submit on change).
        page.goto(f"{server.url}/migrations")
        page.select_option("#stage", "provisioned")
        page.click("form[aria-label='Filter migrations'] button[type=submit]")
        page.wait_for_url(re.compile(r".*stage=provisioned.*"))
        rows = page.locator("#migrations tbody tr")
        assert rows.count() > 0
        rows.first.locator("a").click()
        page.wait_for_url(re.compile(r".*/migrations/[0-9a-f-]{36}$"))
        page.click("summary:has-text('Add a note')")  # <details> opens without script
        page.fill("#note_added-text", "Recorded without JavaScript")
        page.click("form[aria-label='note added'] button[type=submit]")
        page.wait_for_url(re.compile(r".*recorded=note_added.*"))
        assert "Recorded without JavaScript" in page.locator("#history").inner_text()
    finally:
        context.close()
