"""Verify the audit view: its hash chain, and each row against the event store itself.

Pages through the audit rows by position and, for the same range of positions, through the
application's notification log (Migration topics only), so a row edited in the view, an event
edited in the store, and a row missing on either side are all reported by position.
"""

from __future__ import annotations

from typing import Any

from projections import rows
from projections.views import ViewStore

PAGE = 1000


def verify(view: ViewStore, app: Any, from_position: int | None = None) -> dict:
    start = from_position or 0
    before = view.fetch(
        "SELECT hash FROM {audit} WHERE position < ? ORDER BY position DESC LIMIT 1", (start,)
    )
    prev = before[0]["hash"] if before else rows.GENESIS_HASH
    checked = 0
    owners: dict[str, tuple[str, str]] = {}  # migration id -> (partner, tenant)
    low = start - 1  # positions (low, high] are compared per page
    result = {"ok": True, "rows_checked": 0, "head_hash": prev, "first_bad_position": None}

    def bad(position: int, reason: str) -> dict:
        return {
            **result,
            "ok": False,
            "rows_checked": checked,
            "head_hash": prev,
            "first_bad_position": position,
            "reason": reason,
        }

    while True:
        page = view.fetch(
            "SELECT * FROM {audit} WHERE position > ? ORDER BY position LIMIT ?", (low, PAGE)
        )
        high = page[-1]["position"] if page else view.position(app.name)
        if high <= low:
            break
        notes = app.recorder.select_notifications(
            low, PAGE + 1, stop=high, topics=rows.MIGRATION_TOPICS, inclusive_of_start=False
        )
        i = 0
        for stored in page:
            position = stored["position"]
            if i < len(notes) and notes[i].id < position:
                return bad(notes[i].id, "event in the store has no audit row")
            row = rows.audit_dict(stored)
            if row["prev_hash"] != prev:
                return bad(position, "prev_hash does not link to the previous row")
            if rows.chain_hash(row) != row["hash"]:
                return bad(position, "hash mismatch: the audit row was altered")
            if i == len(notes) or notes[i].id != position:
                return bad(position, "audit row has no matching event in the store")
            notification = notes[i]
            i += 1
            try:
                event = app.mapper.to_domain_event(notification)
            except Exception as e:
                return bad(position, f"stored event cannot be decoded: {e}")
            mid = str(event.originator_id)
            if mid not in owners:
                owners[mid] = _owner(view, mid, event, row)
            expected = rows.audit_row(position, event, *owners[mid], prev)
            if expected != row:
                fields = sorted(k for k in row if expected.get(k) != row.get(k))
                return bad(position, f"audit row differs from the stored event: {fields}")
            prev = row["hash"]
            checked += 1
        if i < len(notes):
            return bad(notes[i].id, "event in the store has no audit row")
        low = high
        if not page:
            break
    return {**result, "rows_checked": checked, "head_hash": prev, "reason": None}


def _owner(view: ViewStore, mid: str, event: Any, row: dict) -> tuple[str, str]:
    """Partner and tenant of a migration: from its creation event, else its current row."""
    if getattr(event, "partner_id", None) and getattr(event, "tenant_id", None):
        return event.partner_id, event.tenant_id
    found = view.fetch("SELECT partner_id, tenant_id FROM {migrations} WHERE id = ?", (mid,))
    if found:
        return found[0]["partner_id"], found[0]["tenant_id"]
    return row["partner_id"], row["tenant_id"]
