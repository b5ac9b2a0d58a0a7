"""Idempotency records: the first response to a request that carried an Idempotency-Key.

A record is saved in the SAME transaction as the events its request stored, so a retry after a
crash either finds the record (and gets the first response back) or finds nothing stored at
all. Its id is uuid5(principal, key): two concurrent first attempts collide in the store.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

_NS = uuid5(NAMESPACE_URL, "urn:csp-tracker")


class IdempotencyRecord(Aggregate):
    TOPIC = "csp_tracker.idempotency:IdempotencyRecord"

    class Event(Aggregate.Event):
        pass

    class Recorded(Event, Aggregate.Created):
        TOPIC = "csp_tracker.idempotency:recorded"
        request_hash: str
        status: int
        body: str

    Created = Recorded

    def __init__(self, request_hash: str, status: int, body: str) -> None:
        self.request_hash = request_hash
        self.status = status
        self.body = body

    @staticmethod
    def key(principal: str, idempotency_key: str) -> UUID:
        return uuid5(_NS, f"idempotency:{principal}:{idempotency_key}")

    @classmethod
    def record(
        cls, principal: str, idempotency_key: str, request_hash: str, status: int, body: str
    ) -> IdempotencyRecord:
        return cls._create(
            cls.Recorded,
            id=cls.key(principal, idempotency_key),
            request_hash=request_hash,
            status=status,
            body=body,
        )


def find(app: Application[UUID], principal: str, idempotency_key: str) -> IdempotencyRecord | None:
    try:
        record: Aggregate = app.repository.get(IdempotencyRecord.key(principal, idempotency_key))
    except AggregateNotFoundError:
        return None
    return record if isinstance(record, IdempotencyRecord) else None
