"""Pure functions from events and derived states to view rows: no SQL, no I/O.

Everything a view stores is computed here from the domain's own fold (`event.evolve`) and rules
(`standing_risks`); nothing re-implements a rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from domain.migration import TOPIC_PREFIX, Migration, event_type
from domain.rules import DATE_NAMES, risk_dates, standing_risks
from domain.state import STATE_FORMAT, MigrationState
from domain.vocabulary import OriginalStatus

MIGRATION_TOPIC_PREFIX = TOPIC_PREFIX
GENESIS_HASH = "0" * 64
# Event attributes that are audit columns (or library bookkeeping), not payload.
_NOT_PAYLOAD = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "principal",
        "role",
        "occurred_at",
        "correlation_id",
        "_prev",  # the stream link (domain.chain): covered by the ledger, not audit payload
        "_link",
    }
)
AUDIT_COLUMNS = (
    "position",
    "recorded_at",
    "occurred_at",
    "migration_id",
    "partner_id",
    "tenant_id",
    "event_type",
    "principal",
    "role",
    "correlation_id",
    "payload",
    "prev_hash",
    "hash",
)


_T = TypeVar("_T")


def _subclasses(cls: type[_T]) -> list[type[_T]]:
    out: list[type[_T]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out += _subclasses(sub)
    return out


MIGRATION_TOPICS: tuple[str, ...] = tuple(
    sorted(
        {
            c.TOPIC
            for c in _subclasses(Migration.Event)
            if getattr(c, "TOPIC", "").startswith(MIGRATION_TOPIC_PREFIX)
        }
    )
)


# -- canonical JSON ---------------------------------------------------------------------
def iso(value: datetime) -> str:
    """Fixed-width ISO-8601 UTC, so stored times sort as text exactly as they do in time."""
    if value.utcoffset() != _ZERO:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


_ZERO = timedelta(0)


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    return value


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

_STATE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 as is, times ISO UTC, Decimals as text."""
    return _ENCODER.encode(jsonable(obj))


def dumps(obj: Any) -> str:
    """`canonical` for values already made of JSON types (skips the conversion walk)."""
    return _ENCODER.encode(obj)


def state_dict(value: Any) -> Any:
    """`MigrationState.to_dict()`, without `dataclasses.asdict`'s deep copies (5x faster);
    a test pins it to `to_dict()`."""
    if hasattr(value, "__dataclass_fields__"):
        value = value.__dict__
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else state_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else state_dict(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# -- audit ------------------------------------------------------------------------------
def payload(event: Migration.Event) -> dict[str, Any]:
    return {
        k: v if type(v) in _PLAIN else jsonable(v)
        for k, v in event.__dict__.items()
        if k not in _NOT_PAYLOAD
    }


_PLAIN = frozenset({str, int, bool, float, type(None)})


def audit_row(
    position: int, event: Migration.Event, partner_id: str, tenant_id: str, prev_hash: str
) -> dict[str, Any]:
    """The audit row of one event, with its link in the hash chain."""
    row = {
        "position": position,
        "recorded_at": iso(event.timestamp),
        "occurred_at": iso(event.occurred_at),
        "migration_id": str(event.originator_id),
        "partner_id": partner_id,
        "tenant_id": tenant_id,
        "event_type": event_type(event),
        "principal": event.principal,
        "role": event.role,
        "correlation_id": event.correlation_id,
        "payload": payload(event),
        "prev_hash": prev_hash,
    }
    row["hash"] = chain_hash(row)
    return row


def audit_record(
    position: int,
    event: Migration.Event,
    migration_id: str,
    recorded_at: str,
    partner_id: str,
    tenant_id: str,
    prev_hash: str,
) -> tuple[tuple[Any, ...], str]:
    """`audit_tuple(audit_row(...))` and its hash, built faster for the projector: the
    canonical body is spelled out in sorted key order around the payload's JSON, so the payload
    is encoded once (test_rows pins it to `audit_row`)."""
    body_payload = dumps(payload(event))
    occurred_at = iso(event.occurred_at)
    kind = event_type(event)
    s = _string
    body = (
        f'{{"correlation_id":{s(event.correlation_id)},"event_type":{s(kind)},'
        f'"migration_id":{s(migration_id)},"occurred_at":{s(occurred_at)},'
        f'"partner_id":{s(partner_id)},"payload":{body_payload},"position":{int(position)},'
        f'"prev_hash":{s(prev_hash)},"principal":{s(event.principal)},'
        f'"recorded_at":{s(recorded_at)},"role":{s(event.role)},"tenant_id":{s(tenant_id)}}}'
    )
    digest = hashlib.sha256((prev_hash + body).encode()).hexdigest()
    record = (
        position,
        recorded_at,
        occurred_at,
        migration_id,
        partner_id,
        tenant_id,
        kind,
        event.principal,
        event.role,
        event.correlation_id,
        body_payload,
        prev_hash,
        digest,
    )
    return record, digest


def chain_hash(row: dict[str, Any]) -> str:
    """sha256(prev_hash || canonical_json(row without hash))."""
    body = dumps({k: v for k, v in row.items() if k != "hash"})
    return hashlib.sha256((row["prev_hash"] + body).encode()).hexdigest()


def audit_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(dumps(row[c]) if c == "payload" else row[c] for c in AUDIT_COLUMNS)


def audit_dict(stored: Any) -> dict[str, Any]:
    """A stored audit row (mapping) as the API sees it: payload parsed back into a dict."""
    row = {c: stored[c] for c in AUDIT_COLUMNS}
    row["payload"] = json.loads(row["payload"])
    return row


# -- current state ----------------------------------------------------------------------
# The stored dates the timed risk flags are decided on (`rules.DATE_NAMES`), in this order:
# columns of `migrations`, and kinds of `summary_dates`.
DATE_COLUMNS = DATE_NAMES
ORIGINAL_TERM_END = "original_term_end"  # summary_dates kind: open, unreplaced, active originals


def stored_dates(state: MigrationState) -> tuple[str | None, ...]:
    """The `DATE_COLUMNS` of a state, as ISO text (None: no such date)."""
    dates = risk_dates(state)
    return tuple(None if dates[n] is None else dates[n].isoformat() for n in DATE_COLUMNS)  # type: ignore[union-attr]


def migration_row(
    migration_id: str, state: MigrationState, version: int, last_type: str, last_at: str
) -> tuple[Any, ...]:
    """The `migrations` row: searchable columns plus the state itself (to evolve next time)."""
    originals = list(state.originals.values())
    return (
        migration_id,
        state.partner_id,
        state.tenant_id,
        state.customer_name,
        state.customer_region,
        state.stage,
        int(state.closed is not None),
        state.original_licenses,
        state.provisioned_licenses,
        dumps({o.subscription_id: o.status for o in originals}),
        *stored_dates(state),
        version,
        last_type,
        last_at,
        # Not sorted: the order of originals and replacements is part of the state.
        _STATE_ENCODER.encode({**state_dict(state), "format": STATE_FORMAT}),
    )


MIGRATION_COLUMNS = (
    "id",
    "partner_id",
    "tenant_id",
    "customer_name",
    "customer_region",
    "stage",
    "closed",
    "original_licenses",
    "provisioned_licenses",
    "original_statuses",
    *DATE_COLUMNS,
    "version",
    "last_event_type",
    "last_event_at",
    "state",
)


def search_row(
    migration_id: str, position: int, customer_name: str, tenant_id: str
) -> tuple[Any, ...]:
    """The `migration_search` row (schema.SEARCH_COLUMNS): name and tenant lowered here, in
    Python, so that both stores fold case alike, non-ASCII letters included (SQLite's lower()
    folds ASCII only). `position` is the log position of the migration's first event. The id
    is kept as it is (it joins `migrations`): ids are UUIDs, spelled in lower case."""
    return (migration_id, position, customer_name.lower(), tenant_id.lower())


def search_needle(text: str) -> str:
    """The text `?q=` looks for: lowered, with `\\`, `%` and `_` removed (as always: they are
    ignored, not matched)."""
    return text.lower().replace("\\", "").replace("%", "").replace("_", "")


_WORD = re.compile(r"\w+")


def search_words(migration_id: str, customer_name: str, tenant_id: str) -> set[str]:
    """The words of a search row (lowered as `search_row` stores them): the maximal runs of
    word characters in its id, name and tenant. PostgreSQL indexes them (see needle_words)."""
    return {w for text in (migration_id, customer_name, tenant_id) for w in _WORD.findall(text)}


def needle_words(needle: str) -> list[tuple[str, str]]:
    """What the words (`search_words`) of any text containing `needle` must include, as
    (kind, run) for each maximal run of word characters in the needle: a run with a non-word
    character on both sides in the needle is a whole word of the text ("exact"); one that only
    has one after it ends a word ("suffix"); one that only has one before it begins a word
    ("prefix"). A needle of a single run gives nothing (it may be inside any word). Whole words
    first, then longer runs: the likeliest to be rare."""
    found = []
    for m in _WORD.finditer(needle):
        before, after = m.start() > 0, m.end() < len(needle)
        if before or after:
            kind = "exact" if before and after else "suffix" if after else "prefix"
            found.append((kind, m.group()))
    return sorted(found, key=lambda kw: (kw[0] != "exact", -len(kw[1])))


def prefix_range(prefix: str) -> tuple[str, str] | None:
    """[low, high): the strings that begin with `prefix`, in code point order (PostgreSQL's
    "C" collation compares UTF-8 bytes, which sort alike); None if the last character has no
    encodable successor."""
    nxt = ord(prefix[-1]) + 1
    if nxt > 0x10FFFF or 0xD800 <= nxt <= 0xDFFF:
        return None
    return prefix, prefix[:-1] + chr(nxt)


def load_state(text: str) -> MigrationState:
    return MigrationState.from_dict(json.loads(text))


def risk_rows(migration_id: str, state: MigrationState) -> list[tuple[str, str]]:
    return [(migration_id, r) for r in sorted(standing_risks(state))]


# -- summary ----------------------------------------------------------------------------
def contribution(state: MigrationState) -> Counter[str]:
    """What one migration adds to its partner's time-independent summary counters."""
    c: Counter[str] = Counter()
    c["migrations"] += 1
    c[f"stage:{state.stage}"] += 1
    for risk in standing_risks(state):
        c[f"risk:{risk}"] += 1
    c["licenses:original"] += state.original_licenses
    c["licenses:provisioned"] += state.provisioned_licenses
    for original in state.originals.values():
        if original.credit is not None:
            c["credits:requested"] += 1
            if original.credit in ("granted", "denied"):
                c[f"credits:{original.credit}"] += 1
    for currency, amount in state.credits_granted.items():
        c[f"granted_amount:{currency}"] += amount  # type: ignore[assignment]
    return c


def summary_dates(state: MigrationState) -> Counter[tuple[str, str]]:
    """What one migration adds to its partner's `summary_dates` buckets, (kind, day) -> n:
    each stored date of `DATE_COLUMNS` it has (`rules.risk_dates` leaves out what a closed
    migration no longer risks), and the term end of each original of an open migration still
    active and unreplaced."""
    c: Counter[tuple[str, str]] = Counter()
    for kind, day in zip(DATE_COLUMNS, stored_dates(state), strict=True):
        if day is not None:
            c[(kind, day)] += 1
    if state.closed is not None:
        return c
    for o in state.in_scope:
        if o.status == OriginalStatus.ACTIVE.value and not o.replaced_by:
            c[(ORIGINAL_TERM_END, o.term_end.isoformat())] += 1
    return c


def decimal_text(value: Decimal) -> str:
    """One spelling per amount, whatever the order of additions that produced it."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text
