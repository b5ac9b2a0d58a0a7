"""Deadlines across a partner's migrations, as JSON and as an iCalendar feed, on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.api.conftest import ACCEPTED, ORIGINAL, PROVISIONED


def _stocked(api) -> str:
    migration_id = api.new_migration()["id"]
    term_end = (date.today() + timedelta(days=40)).isoformat()
    api.event(migration_id, {**ORIGINAL, "term_end": term_end})
    api.event(migration_id, ACCEPTED)
    api.event(
        migration_id,
        {
            "type": "admin_access_granted",
            "kind": "gdap",
            "expires_at": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
            "relationship_id": "rel-1",
        },
    )
    api.event(migration_id, PROVISIONED)
    api.settle()
    return migration_id


def test_the_deadlines_soonest_first(api):
    migration_id = _stocked(api)
    items = api.get("admin_a", "/v1/deadlines").json()["items"]
    kinds = [i["kind"] for i in items]
    assert kinds == ["reduction_window_closes", "gdap_expires", "auto_renew_off_by"]
    assert all(i["migration_id"] == migration_id for i in items)
    assert items[0]["date"] == (date.today() + timedelta(days=7)).isoformat()
    assert items[2]["what"].startswith("turn auto-renew off for orig-1")
    only = api.get("admin_a", "/v1/deadlines", params={"kind": "gdap_expires"}).json()["items"]
    assert [i["kind"] for i in only] == ["gdap_expires"]
    near = api.get("admin_a", "/v1/deadlines", params={"within_days": 10}).json()["items"]
    assert [i["kind"] for i in near] == ["reduction_window_closes"]


def test_partners_see_their_own_only(api):
    _stocked(api)
    assert api.get("admin_b", "/v1/deadlines").json()["items"] == []
    response = api.get("admin_b", "/v1/deadlines", params={"partner_id": "fabrikam"})
    assert response.status_code == 403
    assert len(api.get("auditor", "/v1/deadlines").json()["items"]) == 3


def test_the_calendar_feed_lists_the_same_items(api):
    _stocked(api)
    items = api.get("admin_a", "/v1/deadlines").json()["items"]
    response = api.get("admin_a", "/v1/deadlines.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    text = response.text
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    unfolded = text.replace("\r\n ", "")
    starts = [line.split(":")[1] for line in unfolded.split("\r\n") if line.startswith("DTSTART")]
    assert starts == [i["date"].replace("-", "") for i in items]
    assert unfolded.count("BEGIN:VEVENT") == len(items) == 3


def test_a_reduction_window_that_closed_is_not_listed_as_overdue(api):
    """A closed window asks nothing any more (the seats can no longer be removed); an
    unreplaced expiry's access loss, once passed, is still listed, marked overdue."""

    def ago(days: int) -> str:
        return (datetime.now(UTC) - timedelta(days=days)).isoformat()

    mid = api.new_migration(occurred_at=ago(40))["id"]
    ended = (date.today() - timedelta(days=35)).isoformat()
    events = [
        {**ORIGINAL, "term_end": ended, "occurred_at": ago(39)},
        {**ORIGINAL, "subscription_id": "orig-2", "occurred_at": ago(39)},
        {**ACCEPTED, "occurred_at": ago(39)},
        # Seats added 12 days ago: their 7-day reduction window closed 5 days ago.
        {**PROVISIONED, "replaces": "orig-2", "subscription_id": "csp-2", "occurred_at": ago(12)},
        {"type": "original_auto_renew_disabled", "subscription_id": "orig-1",
         "occurred_at": ago(39)},
        {"type": "original_subscription_expired", "subscription_id": "orig-1",
         "occurred_at": ago(35)},
    ]  # fmt: skip
    for body in events:
        response = api.event(mid, body)
        assert response.status_code == 201, response.text
    api.settle()
    items = api.get("admin_a", "/v1/deadlines").json()["items"]
    kinds = {i["kind"]: i["overdue"] for i in items}
    assert "reduction_window_closes" not in kinds
    assert kinds["access_lost"] is True
