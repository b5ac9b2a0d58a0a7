"""The web pages through a TestClient on both stores: what they show, who sees what, and the
form that records events (validated, authorised and refused exactly as the API does)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from fastapi.testclient import TestClient

from domain.access import revoke_key
from tests.api.conftest import ACCEPTED, CANCELLED, ORIGINAL, PROVISIONED, Api
from tests.api.pages import csrf_of, sign_in


def _migration(api: Api, *events: dict[str, Any], tenant: str = "contoso", **seed: Any) -> str:
    mid = str(api.new_migration(tenant_id=f"{tenant}.onmicrosoft.com", **seed)["id"])
    for body in events:
        response = api.event(mid, body)
        assert response.status_code == 201, response.text
    api.settle()
    return mid


def _record(api: Api, mid: str, **form: str) -> Any:
    page = api.client.get(f"/migrations/{mid}")
    version = re.search(r'name="version" value="(\d+)"', page.text)
    data = {"csrf": csrf_of(page.text), "version": version.group(1) if version else "", **form}
    return api.client.post(f"/migrations/{mid}/events", data=data, follow_redirects=False)


def _version(api: Api, mid: str) -> int:
    return int(api.get("admin_a", f"/v1/migrations/{mid}").json()["version"])


def test_the_pipeline_counts_are_the_summarys(api: Api) -> None:
    _migration(api, ORIGINAL, ACCEPTED)
    _migration(api, ORIGINAL, ACCEPTED, {**PROVISIONED, "licenses": 20}, tenant="litware")
    sign_in(api.client, api.tokens["admin_a"])
    html = api.client.get("/pipeline").text
    summary = api.get("admin_a", "/v1/dashboard/summary").json()["overall"]
    for risk, n in summary["risks"].items():
        if n:
            assert f'data-risk="{risk}">{n}<' in html
    for days, n in summary["ending_unreplaced"].items():
        assert f'data-ending="{days}">{n}<' in html
    assert f"{summary['migrations']} migrations" in html
    assert "License shortfall" in html and "Needs attention" in html


def test_a_migration_page_shows_flags_next_action_and_both_sides(api: Api) -> None:
    mid = _migration(api, ORIGINAL, ACCEPTED, {**PROVISIONED, "licenses": 20})
    sign_in(api.client, api.tokens["admin_a"])
    html = api.client.get(f"/migrations/{mid}").text
    assert "License shortfall" in html
    assert "Provision 5 more" in html  # the next action, in plain words
    assert 'data-subscription="orig-1"' in html and "csp-1" in html
    assert html.count('class="reached"') == 2  # requested; accepted and provisioned


def test_another_partners_migration_is_not_found_as_a_page(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["admin_b"])
    response = api.client.get(f"/migrations/{mid}", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert mid not in api.client.get("/migrations").text
    assert mid not in api.client.get("/audit").text


def test_a_note_recorded_through_the_form_is_an_event_with_its_context(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["sales_a"])
    response = _record(api, mid, type="note_added", text="Called the customer's GA")
    assert response.status_code == 303
    assert response.headers["location"] == f"/migrations/{mid}?recorded=note_added#history"
    page = api.client.get(response.headers["location"])
    assert "Called the customer" in page.text
    rows = api.get("auditor", "/v1/audit", params={"migration_id": mid}).json()["items"]
    note = rows[-1]
    assert note["event_type"] == "note_added"
    assert (note["principal"], note["role"]) == ("sales-a", "sales_agent")
    assert note["correlation_id"]


def test_a_refusal_is_shown_on_the_form_and_nothing_is_stored(api: Api) -> None:
    mid = _migration(api, ORIGINAL, ACCEPTED, PROVISIONED)
    sign_in(api.client, api.tokens["billing_a"])
    before = _version(api, mid)
    # The original is active: a credit can only be asked for a cancelled one.
    response = _record(api, mid, type="credit_requested", subscription_id="orig-1",
                       requested_by="partner")  # fmt: skip
    assert response.status_code == 422
    assert 'id="refusal"' in response.text and "Not recorded" in response.text
    api_answer = api.post(
        "billing_a",
        f"/v1/migrations/{mid}/events",
        {"type": "credit_requested", "subscription_id": "orig-1", "requested_by": "partner"},
    )
    assert api_answer.status_code == 422
    assert f"<code>{api_answer.json()['error']}</code>" in response.text  # the API's code
    assert _version(api, mid) == before


def test_the_form_is_validated_by_the_apis_schema(api: Api) -> None:
    mid = _migration(api, ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED)
    sign_in(api.client, api.tokens["billing_a"])
    before = _version(api, mid)
    response = _record(api, mid, type="credit_resolved", subscription_id="orig-1",
                       outcome="granted", amount="-3", currency="EUR")  # fmt: skip
    assert response.status_code == 422
    assert "validation_error" in response.text and "amount" in response.text
    assert _version(api, mid) == before


def test_a_stale_page_cannot_overwrite_a_newer_change(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["admin_a"])
    page = api.client.get(f"/migrations/{mid}")
    api.event(mid, {"type": "note_added", "text": "meanwhile"})
    version = re.search(r'name="version" value="(\d+)"', page.text)
    assert version
    response = api.client.post(
        f"/migrations/{mid}/events",
        data={
            "csrf": csrf_of(page.text),
            "version": version.group(1),
            "type": "note_added",
            "text": "late",
        },
    )
    assert response.status_code == 412
    assert "version_conflict" in response.text


def test_forms_are_offered_only_for_what_the_role_may_record(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["sales_a"])
    sales = api.client.get(f"/migrations/{mid}").text
    assert 'value="note_added"' in sales and 'value="credit_requested"' not in sales
    sign_in(api.client, api.tokens["billing_a"])
    billing = api.client.get(f"/migrations/{mid}").text
    assert 'value="credit_requested"' in billing and 'value="credit_resolved"' in billing
    sign_in(api.client, api.tokens["auditor"])
    audit = api.client.get(f"/migrations/{mid}").text
    assert 'name="type"' not in audit
    refused = api.client.post(
        f"/migrations/{mid}/events",
        data={"csrf": csrf_of(audit), "type": "note_added", "text": "x"},
    )
    assert refused.status_code == 403 and "read_only" in refused.text


def test_a_role_that_may_not_record_an_event_is_refused_as_by_the_api(api: Api) -> None:
    mid = _migration(api, ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED)
    sign_in(api.client, api.tokens["sales_a"])
    response = _record(api, mid, type="credit_requested", subscription_id="orig-1",
                       requested_by="partner")  # fmt: skip
    assert response.status_code == 403
    assert "role_not_permitted" in response.text


def test_state_as_of_a_date_uses_time_travel(api: Api) -> None:
    mid = _migration(
        api, {**ORIGINAL, "occurred_at": "2026-01-05T10:00:00Z"}, occurred_at="2026-01-02T09:00:00Z"
    )
    sign_in(api.client, api.tokens["admin_a"])
    today = api.tracker.clock().date().isoformat()
    now = api.client.get(f"/migrations/{mid}?as_of={today}T23:59:59Z")
    assert now.status_code == 200 and 'id="as-of-note"' in now.text
    business = api.client.get(f"/migrations/{mid}?as_of=2026-02-01&basis=business")
    assert business.status_code == 200
    assert "orig-1" in business.text  # happened by then, though recorded later
    recorded = api.client.get(f"/migrations/{mid}?as_of=2026-02-01&basis=recorded")
    assert recorded.status_code == 422 and "did not exist yet" in recorded.text
    bad = api.client.get(f"/migrations/{mid}?as_of=yesterday")
    assert bad.status_code == 422 and "As of" in bad.text


def test_the_audit_page_filters_and_exports_what_the_key_may_read(api: Api) -> None:
    mid_a = _migration(api, ORIGINAL, ACCEPTED)
    mid_b = str(api.new_migration("admin_b", tenant_id="other.onmicrosoft.com")["id"])
    api.settle()
    sign_in(api.client, api.tokens["admin_a"])
    page = api.client.get("/audit", params={"event_type": "invitation_accepted"})
    assert page.status_code == 200
    assert page.text.count('data-event="invitation_accepted"') == 1
    assert 'data-event="relationship_requested"' not in page.text
    exported = api.client.get("/audit/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["migration_id"] for r in rows} == {mid_a}
    assert mid_b not in exported.text
    bad = api.client.get("/audit", params={"recorded_from": "soon"})
    assert bad.status_code == 422 and "Recorded from" in bad.text


def test_verification_on_the_page_is_for_auditors(api: Api) -> None:
    _migration(api, ORIGINAL)
    api.client.app.state.read_side.issue_head(force=True)
    sign_in(api.client, api.tokens["admin_a"])
    assert api.client.get("/audit/verify").status_code == 403
    sign_in(api.client, api.tokens["auditor"])
    assert 'id="signed-head"' in api.client.get("/audit").text
    result = api.client.get("/audit/verify")
    assert result.status_code == 200
    assert "Verified:" in result.text
    checked = api.get("auditor", "/v1/audit/verify").json()
    assert f"every one of the {checked['events_in_store']} events" in result.text


def test_the_deadlines_page_lists_the_apis_deadlines(api: Api) -> None:
    _migration(api, {**ORIGINAL, "term_end": "2026-12-20"}, ACCEPTED)
    sign_in(api.client, api.tokens["admin_a"])
    html = api.client.get("/deadlines", params={"within_days": "365"}).text
    items = api.get("admin_a", "/v1/deadlines", params={"within_days": 365}).json()["items"]
    assert items
    shown = re.findall(r'data-kind="([a-z_]+)" data-migration="([0-9a-f-]+)" data-date="([0-9-]+)"',
                       html)  # fmt: skip
    assert shown == [(i["kind"], i["migration_id"], i["date"]) for i in items]
    calendar = api.client.get("/deadlines.ics", params={"within_days": "365"})
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert calendar.text.count("BEGIN:VEVENT") == len(items)


def test_a_browser_gets_an_error_page_and_an_api_client_json(api: Api) -> None:
    sign_in(api.client, api.tokens["admin_a"])
    page = api.client.get("/nowhere", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert api.client.get("/nowhere").json()["error"] == "not_found"
    assert api.client.get("/v1/nowhere", headers={"accept": "text/html"}).json()["error"]


def test_the_docs_load_nothing_from_elsewhere(api: Api) -> None:
    html = api.client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert api.client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert api.client.get("/redoc").status_code == 404


def test_a_calendar_address_serves_the_keys_deadlines_until_it_is_revoked(api: Api) -> None:
    _migration(api, {**ORIGINAL, "term_end": "2026-12-20"}, ACCEPTED)
    sign_in(api.client, api.tokens["sales_a"])
    html = api.client.get("/deadlines").text
    found = re.search(r'id="feed" value="http://testserver(/calendar/[0-9a-f]{64}\.ics)"', html)
    assert found
    feed = found.group(1)
    outsider = TestClient(api.client.app)  # no session, no key: the address is the secret
    calendar = outsider.get(feed)
    assert calendar.status_code == 200
    items = api.get("sales_a", "/v1/deadlines", params={"within_days": 365}).json()["items"]
    assert calendar.text.count("BEGIN:VEVENT") == len(items) > 0
    forged = feed[:-5] + ("0" if feed[-5] != "0" else "1") + ".ics"  # one MAC digit changed
    assert outsider.get(forged).status_code == 404
    revoke_key(api.tracker, "sales-a")
    api.client.app.state.keys.clear()
    assert outsider.get(feed).status_code == 404


def test_an_oversized_form_field_is_refused_with_a_page_and_nothing_stored(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["admin_a"])
    before = _version(api, mid)
    page = api.client.get(f"/migrations/{mid}")
    response = api.client.post(
        f"/migrations/{mid}/events",
        data={"csrf": csrf_of(page.text), "type": "note_added", "text": "x" * 6000},
        headers={"accept": "text/html"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "validation_error" in response.text
    assert _version(api, mid) == before


def test_every_risk_stage_and_deadline_kind_has_words_on_the_pages() -> None:
    from typing import get_args

    from api.routes.deadlines import Kind
    from api.web.render import DEADLINE_LABELS, RISK_LABELS, STAGE_LABELS
    from domain.vocabulary import Risk, Stage

    assert set(RISK_LABELS) == {r.value for r in Risk}
    assert set(STAGE_LABELS) == {s.value for s in Stage}
    assert set(DEADLINE_LABELS) == set(get_args(Kind))


def test_the_confirmation_names_only_what_a_form_records(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["admin_a"])
    forged = api.client.get(f"/migrations/{mid}", params={"recorded": "Credit of 5000 EUR"})
    assert "Credit of 5000" not in forged.text
    real = api.client.get(f"/migrations/{mid}", params={"recorded": "note_added"})
    assert "Recorded: note added." in real.text


def test_a_version_that_is_not_a_number_is_refused(api: Api) -> None:
    mid = _migration(api, ORIGINAL)
    sign_in(api.client, api.tokens["admin_a"])
    before = _version(api, mid)
    page = api.client.get(f"/migrations/{mid}")
    response = api.client.post(
        f"/migrations/{mid}/events",
        data={"csrf": csrf_of(page.text), "version": "abc", "type": "note_added", "text": "x"},
    )
    assert response.status_code == 422 and "invalid_version" in response.text
    assert _version(api, mid) == before


def test_credits_awaiting_counts_only_unanswered_requests(api: Api) -> None:
    resolved = {"type": "credit_resolved", "subscription_id": "orig-1", "outcome": "denied"}
    asked = {"type": "credit_requested", "subscription_id": "orig-1", "requested_by": "customer"}
    _migration(api, ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED, asked, resolved)
    _migration(api, ORIGINAL, ACCEPTED, PROVISIONED, CANCELLED, asked, tenant="litware")
    sign_in(api.client, api.tokens["admin_a"])
    html = api.client.get("/pipeline").text
    assert re.search(r"data-credits-awaiting>1<", html)


def test_the_calendar_feed_escapes_a_lone_carriage_return(api: Api) -> None:
    from api.routes.deadlines import _text

    assert _text("Evil\rBEGIN:VEVENT") == "Evil\\nBEGIN:VEVENT"


def test_text_filters_say_what_is_wrong_with_them(api: Api) -> None:
    sign_in(api.client, api.tokens["admin_a"])
    long = api.client.get("/audit", params={"by": "x" * 201})
    assert long.status_code == 422 and "Who: at most 200 characters" in long.text
    nul = api.client.get("/migrations", params={"q": "a\x00b"})
    assert nul.status_code == 422 and "Customer: a NUL character is not text" in nul.text
