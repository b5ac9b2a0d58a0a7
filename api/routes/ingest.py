"""Partner Center webhook notifications: received signed, applied to migrations, logged."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from api.deps import CorrelationId, CurrentPrincipal, TrackerDep
from api.errors import ApiError, errors_for
from api.routes.audit import TIME_RULE, QueryTime
from api.schemas import NO_NUL, IngestOutcome, NotificationLog, NotificationRecord
from api.webhook import check_secret, verify_signature
from domain.context import Context
from domain.errors import NotFound
from domain.ingest import Received, Status
from domain.ingesting import Ingestor

router = APIRouter(prefix="/v1/ingest/partner-center", tags=["ingest"])

log = logging.getLogger(__name__)
# A little drift between Partner Center's clock and ours.
CLOCK_SKEW = timedelta(minutes=5)
Text = Annotated[str, Field(max_length=2000)]


def _utc(value: Any) -> Any:
    """Partner Center sends UTC times as strings ("...Z"); one without a zone is UTC too."""
    if not isinstance(value, str):
        raise ValueError("ResourceChangeUtcDate must be a time in a string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Notification(BaseModel):
    """Partner Center's notification body, exactly as it is sent (`AuditUri` and
    `ResourceName` may be null)."""

    model_config = ConfigDict(extra="ignore")
    EventName: Annotated[str, Field(min_length=1, max_length=200)]
    ResourceUri: Annotated[str, Field(min_length=1, max_length=4000)]
    ResourceName: Annotated[str | None, Field(max_length=4000)] = None
    AuditUri: Annotated[str | None, Field(max_length=4000)] = None
    ResourceChangeUtcDate: Annotated[AwareDatetime, BeforeValidator(_utc)]


class MatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    migration_id: UUID = Field(strict=False)


def _outcome(record: Any, new: bool) -> dict[str, Any]:
    body = record.to_dict()
    return {
        "status": body["status"] if new else str(Status.DUPLICATE),
        "notification_id": body["id"],
        "migration_id": body["migration_id"],
        "migration_version": body["migration_version"],
        "refusal": body["refusal"],
        "first": None if new else body,
    }


@router.post(
    "/{partner_id}",
    response_model=IngestOutcome,
    summary="Receive a Partner Center notification",
    responses=errors_for(
        400,
        401,
        413,
        422,
        503,
        e400="Not a Partner Center notification (`invalid_notification`), outside the "
        "window (`stale_notification`, `notification_in_future`), or a body refused before "
        "parsing (`invalid_encoding`, `duplicate_key`, `empty_idempotency_key`, "
        "`invalid_body`)",
        e401="Unsigned, badly signed, or for an unknown partner",
    ),
)
async def receive_notification(
    partner_id: Annotated[
        str, Path(max_length=100, description="The partner whose certificate signs the body")
    ],
    request: Request,
    tracker: TrackerDep,
    correlation_id: CorrelationId,
    authorization: Annotated[
        str, Header(max_length=2000, description="`Signature <base64 signature>`")
    ] = "",
    x_ms_signature_algorithm: Annotated[
        str, Header(max_length=40, description="The signature's algorithm, e.g. rsa-sha256")
    ] = "",
    x_ms_certificate_url: Annotated[
        str, Header(max_length=2000, description="Where Partner Center publishes its certificate")
    ] = "",
    secret: Annotated[
        str,
        Query(
            max_length=200,
            description="The partner's webhook secret, part of the URL registered in Partner "
            "Center (`csp-tracker partners pin-certificate` prints it)",
        ),
    ] = "",
) -> dict[str, Any]:
    """A notification as Partner Center posts it, signed (`Authorization: Signature ...`).
    Unsigned, badly signed and unknown-partner requests get 401 and nothing is stored; every
    signed notification answers 200 with its status, refused and unmatched ones included."""
    body = await request.body()
    try:
        partner = await run_in_threadpool(tracker.get_partner, partner_id)
    except NotFound:
        partner = None
    check_secret(None if partner is None else partner.webhook_secret_sha256, secret)
    assert partner is not None  # check_secret refused unknown partners
    try:
        verify_signature(partner.certificate_pem, body, authorization, x_ms_signature_algorithm)
    except ApiError:
        # Operators pin the certificate published at this URL (docs/ingest.md).
        log.warning(
            "refused a notification for %s: signature; X-MS-Certificate-Url: %s",
            partner.partner_id,
            x_ms_certificate_url[:300],
        )
        raise
    digest = hashlib.sha256(body).hexdigest()
    try:
        note = Notification.model_validate_json(body)
    except ValidationError:
        # Signed, but not a notification: kept as received (nothing is dropped).
        record, new = await run_in_threadpool(
            Ingestor(tracker).receive_unreadable, partner.partner_id, digest
        )
        return _outcome(record, new)
    now = tracker.clock()
    window = timedelta(hours=request.app.state.settings.ingest_window_hours)
    changed = note.ResourceChangeUtcDate
    if changed < now - window:
        raise ApiError(400, "stale_notification", "ResourceChangeUtcDate is outside the window")
    if changed > now + CLOCK_SKEW:
        raise ApiError(400, "notification_in_future", "ResourceChangeUtcDate lies in the future")
    received = Received(
        note.EventName, note.ResourceUri, note.ResourceName or "", note.AuditUri or "", changed
    )
    record, new = await run_in_threadpool(
        Ingestor(tracker).receive, partner.partner_id, received, digest, correlation_id
    )
    return _outcome(record, new)


@router.get(
    "",
    response_model=NotificationLog,
    summary="List received notifications",
    responses=errors_for(401, 403, 422, 503),
)
def list_notifications(
    principal: CurrentPrincipal,
    tracker: TrackerDep,
    status: Annotated[
        Literal["applied", "unmatched", "rejected", "needs_reconciliation"] | None,
        Query(description="What became of the notification"),
    ] = None,
    partner_id: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=NO_NUL,
            description="Auditors: one partner (a partner key: its own)",
        ),
    ] = None,
    since: Annotated[
        QueryTime | None,
        Query(description=f"Changed (ResourceChangeUtcDate) at or after. {TIME_RULE}"),
    ] = None,
    until: Annotated[
        QueryTime | None,
        Query(description=f"Changed before (exclusive). {TIME_RULE}"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many (1..1000)")] = 100,
) -> dict[str, Any]:
    """The ingest log, oldest first: a partner key sees its own partner's notifications."""
    if principal.partner_id is not None:
        if partner_id not in (None, principal.partner_id):
            raise ApiError(403, "partner_scope", "a partner key reads its own partner only")
        partner_id = principal.partner_id
    items = []
    for item in Ingestor(tracker).log(partner_id, status, since, until):
        items.append(item)
        if len(items) == limit:
            break
    return {"items": items}


@router.post(
    "/{notification_id}/match",
    response_model=NotificationRecord,
    summary="Match a notification to a migration",
    responses=errors_for(400, 401, 403, 404, 409, 412, 413, 422, 503),
)
def match_notification(
    notification_id: Annotated[
        UUID, Path(description="The notification's id (`notification_id` when received)")
    ],
    body: MatchBody,
    principal: CurrentPrincipal,
    tracker: TrackerDep,
    correlation_id: CorrelationId,
) -> dict[str, Any]:
    """Link an unmatched notification to a migration (account admin): its tenant id is
    recorded on the migration, the notification applied, and the tenant matches by itself
    from then on."""
    if principal.role != "account_admin" or principal.partner_id is None:
        raise ApiError(403, "role_not_permitted", "only a partner's account admin matches")
    ingestor = Ingestor(tracker)
    record = ingestor.get(notification_id, principal.partner_id)
    if record.customer_guid is None:
        raise ApiError(422, "no_customer_id", "the notification names no customer id")
    ctx = Context(principal.name, principal.role, correlation_id, partner_id=principal.partner_id)
    return ingestor.match(notification_id, body.migration_id, ctx, record.customer_guid).to_dict()
