"""Calendar subscriptions: a secret address per API key that serves its deadlines as iCalendar,
because calendar apps subscribe to a URL and cannot send an `Authorization` header.

The address holds the key's aggregate id (a UUID derived from the hash of the key's token: it
reveals nothing about the token) and an HMAC of it under the server's session secret. The feed
reads with the key's own scope (its partner, or every partner for an auditor) and stops
working when the key is revoked or the session secret is replaced."""

from __future__ import annotations

import hmac
import re
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from api.deps import Principal
from api.routes.deadlines import calendar_response
from domain.access import ApiKey, token_hash

router = APIRouter(include_in_schema=False)

_FEED = re.compile(r"^([0-9a-f]{32})([0-9a-f]{32})$")
FEED_DAYS = 365
PURPOSE = "calendar"


def feed_path(request: Request, token: str) -> str:
    """The calendar address of the API key `token` (the signed-in one)."""
    key_id = ApiKey.key(token_hash(token)).hex
    mac = request.app.state.session_keys.mac(PURPOSE, key_id)[:32]
    return f"/calendar/{key_id}{mac}.ics"


def _principal(request: Request, feed: str) -> Principal | None:
    found = _FEED.fullmatch(feed)
    if found is None:
        return None
    key_id, mac = found.groups()
    expected = request.app.state.session_keys.mac(PURPOSE, key_id)[:32]
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        key: Any = request.app.state.tracker.repository.get(UUID(key_id))
    except AggregateNotFoundError:
        return None
    if not isinstance(key, ApiKey) or key.revoked:
        return None
    return Principal(key.key_id, key.name, key.role, key.partner_id)


@router.get("/calendar/{feed}.ics")
def calendar(request: Request, feed: str) -> Response:
    """The deadlines of the next FEED_DAYS days (and the overdue ones) of the key's scope."""
    principal = _principal(request, feed)
    if principal is None:
        return PlainTextResponse("no such calendar", status_code=404)
    queries = request.app.state.read_side.queries
    now = queries.app.clock()
    items = queries.deadlines(now=now, partner_id=principal.partner_id, within_days=FEED_DAYS)
    response = calendar_response(items, now, str(request.base_url))
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
