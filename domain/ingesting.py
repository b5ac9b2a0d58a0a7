"""Applying Partner Center notifications to migrations, and the ingest log's queries.

`receive` finds the partner's open migration of the notification's customer (by the tenant
claim on its Entra tenant id), runs the command the notification stands for as the `system`
role on behalf of `partner-center`, and logs the outcome. When it applies, the log record is
saved in the same transaction as the migration's events (`Tracker.attaching`), so a retry that
races the first delivery collides on the record and stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.application import Tracker
from domain.commands import Command
from domain.context import Context
from domain.errors import Conflict, DomainError, NotFound, VersionConflict
from domain.ingest import (
    ALREADY_RECORDED,
    EPOCH,
    PRINCIPAL,
    UNREADABLE,
    IngestedNotification,
    Received,
    Status,
    command_for,
    customer_guid,
)
from domain.partner import TenantClaim
from domain.vocabulary import Role


class Ingestor:
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def receive(
        self, partner_id: str, received: Received, body_sha256: str, correlation_id: str
    ) -> tuple[IngestedNotification, bool]:
        """(the log record, True) for a new notification; (the first record, False) for a
        retry of one already logged."""
        key = IngestedNotification.key(
            partner_id, received.event_name, received.resource_uri, received.resource_change_utc
        )
        first = self._find(key)
        if first is not None:
            return first, False
        command = command_for(
            received.event_name, received.resource_uri, received.resource_change_utc
        )
        migration_id = self._open_migration(partner_id, customer_guid(received.resource_uri))
        if command is None or migration_id is None:
            status = Status.NEEDS_RECONCILIATION if command is None else Status.UNMATCHED
            record = IngestedNotification.log(
                partner_id, received, body_sha256, status, migration_id=migration_id
            )
            return self._save_alone(record)
        ctx = Context(
            PRINCIPAL, Role.SYSTEM, correlation_id, received.resource_change_utc, partner_id
        )
        return self._apply(key, partner_id, received, body_sha256, migration_id, command, ctx)

    def match(
        self, notification_id: UUID, migration_id: UUID, ctx: Context, tenant_guid: str
    ) -> IngestedNotification:
        """Link an unmatched notification to a migration: record the tenant id on it (so the
        tenant matches by itself from now on), then apply the notification."""
        record = self.get(notification_id, ctx.partner_id)
        if record.status != Status.UNMATCHED:
            raise Conflict(
                "not_unmatched",
                f"this notification is {record.status}; only unmatched ones can be matched",
                status=record.status,
            )
        migration = self.tracker.get(migration_id)
        migration.ensure_visible_to(ctx)
        if migration.state.partner_id != record.partner_id:
            raise NotFound("migration_not_found", f"no migration {migration_id}")
        if migration.state.tenant_guid not in (None, tenant_guid):
            raise Conflict(
                "tenant_guid_mismatch",
                "the migration names another Entra tenant id than the notification's customer",
                tenant_guid=migration.state.tenant_guid,
            )
        if migration.state.tenant_guid is None:
            self.tracker.execute(
                migration_id, ctx, Command.of("tenant_identified", tenant_guid=tenant_guid)
            )
        received = record.received()
        command = command_for(
            received.event_name, received.resource_uri, received.resource_change_utc
        )
        if command is None:
            record.match(ctx.principal, migration_id, Status.NEEDS_RECONCILIATION, None, None)
            self.tracker.save(record)
            return record
        system = Context(
            PRINCIPAL,
            Role.SYSTEM,
            ctx.correlation_id,
            received.resource_change_utc,
            record.partner_id,
        )
        try:
            with self.tracker.attaching(lambda m: self._matched(record, ctx, m)):
                self.tracker.execute(migration_id, system, command)
        except DomainError as refusal:
            if isinstance(refusal, VersionConflict):
                raise
            record.match(ctx.principal, migration_id, Status.REJECTED, None, refusal.code)
            try:
                self.tracker.save(record)
            except IntegrityError:  # a concurrent match saved first
                raise Conflict("not_unmatched", "this notification was matched meanwhile") from None
        return record

    def receive_unreadable(
        self, partner_id: str, body_sha256: str
    ) -> tuple[IngestedNotification, bool]:
        """Keep a signed body that is not a notification (nothing is dropped): logged
        `rejected`, keyed by its hash so a retry of it is a duplicate."""
        received = Received(UNREADABLE, f"sha256:{body_sha256}", "", "", EPOCH)
        record = IngestedNotification.log(
            partner_id, received, body_sha256, Status.REJECTED, refusal="invalid_notification"
        )
        first = self._find(record.id)
        if first is not None:
            return first, False
        return self._save_alone(record)

    def get(self, notification_id: UUID, partner_id: str | None = None) -> IngestedNotification:
        found = self._find(notification_id)
        if found is None or (partner_id is not None and found.partner_id != partner_id):
            raise NotFound("notification_not_found", f"no notification {notification_id}")
        return found

    def log(
        self,
        partner_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The log, oldest first, read from the store itself (a partner's volume of
        notifications is small; each record is one aggregate)."""
        topic = IngestedNotification.Logged.TOPIC
        start = None
        while True:
            page = self.tracker.recorder.select_notifications(
                start, 500, topics=[topic], inclusive_of_start=False
            )
            if not page:
                return
            for n in page:
                # A UUID: the recorder converts ids back to the tracker's id type.
                record_id = cast(UUID, n.originator_id)
                record: IngestedNotification = self.tracker.repository.get(record_id)
                if partner_id is not None and record.partner_id != partner_id:
                    continue
                if status is not None and record.status != status:
                    continue
                changed = record.resource_change_utc
                if (since is not None and changed < since) or (
                    until is not None and changed >= until
                ):
                    continue
                yield record.to_dict()
            start = page[-1].id

    # -- plumbing ----------------------------------------------------------------------------
    def _find(self, notification_id: UUID) -> IngestedNotification | None:
        try:
            found: Aggregate = self.tracker.repository.get(notification_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, IngestedNotification) else None

    def _open_migration(self, partner_id: str, guid: str | None) -> UUID | None:
        if guid is None:
            return None
        try:
            claim: TenantClaim = self.tracker.repository.get(
                TenantClaim.key(partner_id, f"guid:{guid}")
            )
        except AggregateNotFoundError:
            return None
        return claim.migration_id

    def _save_alone(self, record: IngestedNotification) -> tuple[IngestedNotification, bool]:
        try:
            self.tracker.save(record)
        except IntegrityError:  # another delivery of the same notification saved first
            first = self._find(record.id)
            if first is None:
                raise
            return first, False
        return record, True

    def _apply(
        self,
        key: UUID,
        partner_id: str,
        received: Received,
        body_sha256: str,
        migration_id: UUID,
        command: Command,
        ctx: Context,
    ) -> tuple[IngestedNotification, bool]:
        made: list[IngestedNotification] = []

        def applied(migration: Any) -> list[Any]:
            # Made again on each attempt of `execute`: the last one made is the one saved.
            made.append(
                IngestedNotification.log(
                    partner_id,
                    received,
                    body_sha256,
                    Status.APPLIED,
                    migration_id=migration_id,
                    migration_version=migration.version,
                )
            )
            return [made[-1]]

        try:
            with self.tracker.attaching(applied):
                self.tracker.execute(migration_id, ctx, command)
        except VersionConflict:
            # The record collided with a concurrent delivery of the same notification (or the
            # migration changed meanwhile): answer as the first delivery was answered.
            first = self._find(key)
            if first is not None:
                return first, False
            raise
        except DomainError as refusal:
            already = refusal.code in ALREADY_RECORDED
            record = IngestedNotification.log(
                partner_id,
                received,
                body_sha256,
                Status.DUPLICATE if already else Status.REJECTED,
                migration_id=migration_id,
                refusal=refusal.code,
            )
            return self._save_alone(record)
        return made[-1], True

    @staticmethod
    def _matched(record: IngestedNotification, ctx: Context, migration: Any) -> list[Any]:
        record.match(ctx.principal, migration.id, Status.APPLIED, migration.version, None)
        return [record]
