"""Stream links: each migration event commits, when it is written, to its predecessor.

Every migration event's stored state carries `_prev`, the SHA-256 of the stored form of the
previous event of the same migration (`GENESIS` for the first), computed inside the save that
writes it. A later rewrite of one stored event cannot stay consistent with the events after it,
and a version gap, a reordering or a deletion inside a stream breaks a link.

Why a mapper step and not a field of the aggregate: the link is over the *stored* bytes (what an
insider could edit), which only exist once the library's mapper has encoded the event; and it is
an integrity property of storage, like the library's own cipher and compressor steps, not a fact
of the domain. So `ChainingMapper` (the library's `Mapper`, extended) adds `_prev` before
encoding and notes `_link` (the new event's own link) after; decoding notes `_link` too, and the
aggregate keeps the link of its last stored event (`Migration._chain_head`, in its snapshots).
Events stored before links existed have no `_prev`: the chain starts at the first linked event,
which links to the stored form of the last unlinked one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

GENESIS = "0" * 64
PREV = "_prev"  # in the stored state: the link of the predecessor
LINK = "_link"  # on a domain event object only (never stored): the link of its stored form

# The links of the events mapped so far in the current save, per migration (set by the Tracker
# around each save, so a failed save leaves nothing behind).
_in_save: ContextVar[dict[UUID, str] | None] = ContextVar("csp_tracker_links", default=None)


def link(originator_id: UUID | str, version: int, topic: str, state: bytes) -> str:
    """SHA-256 (hex) of a stored event: id, version and topic, NUL-separated, then the state."""
    head = f"{originator_id}\x00{version}\x00{topic}\x00".encode()
    return hashlib.sha256(head + state).hexdigest()


def link_of(stored: StoredEvent) -> str:
    return link(stored.originator_id, stored.originator_version, stored.topic, stored.state)


@contextmanager
def saving() -> Iterator[dict[UUID, str]]:
    """Scope one save: events mapped inside link to the ones mapped before them."""
    links: dict[UUID, str] = {}
    token = _in_save.set(links)
    try:
        yield links
    finally:
        _in_save.reset(token)


class ChainingMapper(Mapper[UUID]):
    """The library's mapper, plus the stream link of every migration event."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if not _is_migration_event(domain_event):
            return super().to_stored_event(domain_event)
        links = _in_save.get()
        previous = None if links is None else links.get(domain_event.originator_id)
        if previous is None:
            # The first event of this save: the aggregate noted its last stored link on it.
            previous = domain_event.__dict__.get(PREV) or GENESIS
        object.__setattr__(domain_event, PREV, previous)
        # `_link` may be left from an earlier failed attempt: never encode it.
        domain_event.__dict__.pop(LINK, None)
        stored = super().to_stored_event(domain_event)
        own = link_of(stored)
        object.__setattr__(domain_event, LINK, own)
        if links is not None:
            links[domain_event.originator_id] = own
        return stored

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        domain_event = super().to_domain_event(stored_event)
        if _is_migration_event(domain_event):
            object.__setattr__(domain_event, LINK, link_of(stored_event))
        return domain_event


_migration_event: type | None = None


def _is_migration_event(event: Any) -> bool:
    global _migration_event
    if _migration_event is None:  # domain.migration imports this module: resolve it late
        from domain.migration import Migration

        _migration_event = Migration.Event
    return isinstance(event, _migration_event)
