"""Verify the store itself, independently of the views: what `csp-tracker verify` reports.

One pass over every stored event in notification order checks
- each migration stream: versions 1, 2, 3, ... with no gap or reordering, and each event's link
  `_prev` equal to the link of the stored form of its predecessor (domain.chain);
- the ledger: the Merkle root recomputed from the stored bytes, at the size of every signed head,
  equals that head's root, and each head's signature is good;
- an earlier head an auditor saved (`against`): same signature and root checks, plus a consistency
  proof from it to the latest head, from the ledger view;
then every snapshot against a replay of its stream, then the audit view against the store.
Nothing is reported ok that was not checked: the counts say what was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import MapperDeserialisationError

from domain.chain import GENESIS, PREV, link
from domain.state import StaleState
from projections import merkle
from projections.heads import TreeHead, key_id, verify_head
from projections.ledger import CompactRange, leaf_of
from projections.rows import MIGRATION_TOPIC_PREFIX
from projections.verify import verify as verify_audit_view

PAGE = 1000
Progress = Callable[[int, int], None]


@dataclass
class _Stream:
    version: int = 0
    link: str | None = None
    linked: bool = False
    events: int = 0


@dataclass
class Report:
    events_in_store: int = 0
    events_verified: int = 0
    events_linked: int = 0
    streams_checked: int = 0
    snapshots_checked: int = 0
    snapshots_stale: int = 0
    heads_checked: int = 0
    links_began: bool = False  # a linked migration event was seen: all later ones must be
    streams: dict[Any, _Stream] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, check: str, reason: str, position: int | None = None) -> None:
        self.failures.append({"check": check, "position": position, "reason": reason})


def verify_store(
    app: Any,
    read_side: Any | None,
    public_key: Ed25519PublicKey | None,
    against: TreeHead | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The full verification. `public_key` is the key heads must be signed with (the auditor's
    pinned key, or the configured one); `read_side` gives the heads and views (None: none)."""
    report = Report()
    reader = None if read_side is None else read_side.ledger
    heads = [] if reader is None else sorted(reader.heads(limit=10**9), key=lambda h: h.tree_size)
    sizes = {h.tree_size for h in heads} | ({against.tree_size} if against else set())
    roots = _scan(app, report, sizes, progress)
    latest = heads[-1] if heads else None
    for head in heads:
        _check_head(report, head, public_key, roots, "signed_head")
    if against is not None:
        _check_against(report, against, latest, public_key, roots, reader)
    if latest is None:
        report.fail("signed_head", "no signed tree head: nothing anchors the store yet")
    _check_streams(app, report)
    views = _check_views(app, read_side, report)
    failures = sorted(report.failures, key=lambda f: (f["position"] is None, f["position"] or 0))
    first = failures[0] if failures else None
    tree = roots.get(report.events_in_store)
    return {
        "ok": not failures,
        "events_in_store": report.events_in_store,
        "events_verified": report.events_verified,
        "events_linked": report.events_linked,
        "streams_checked": report.streams_checked,
        "snapshots_checked": report.snapshots_checked,
        "snapshots_stale": report.snapshots_stale,
        "tree": {"size": report.events_in_store, "root_hash": tree.hex() if tree else None},
        "signed_head": None if latest is None else latest.to_dict(),
        "heads_checked": report.heads_checked,
        "events_after_head": report.events_in_store - (latest.tree_size if latest else 0),
        "events_anchored": min(report.events_in_store, latest.tree_size if latest else 0),
        "key_id": None if public_key is None else key_id(public_key),
        "against": None if against is None else against.to_dict(),
        "views_lag": views.get("lag"),
        "views": views,
        "first_bad_position": None if first is None else first["position"],
        "reason": None if first is None else f"{first['check']}: {first['reason']}",
        "failures": failures[:100],
    }


def _scan(app: Any, report: Report, sizes: set[int], progress: Progress | None) -> dict[int, bytes]:
    """One pass over the log: stream checks, and the root at every size in `sizes`."""
    tree = CompactRange()
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in sizes else {}
    streams = report.streams
    total = app.recorder.max_notification_id() or 0
    start: int | None = None
    while True:
        page = app.recorder.select_notifications(start, PAGE, inclusive_of_start=False)
        if not page:
            break
        for n in page:
            tree.append(leaf_of(n))
            report.events_in_store += 1
            ok = True
            stream = streams.setdefault(n.originator_id, _Stream())
            stream.events += 1
            if n.topic.startswith(MIGRATION_TOPIC_PREFIX):
                ok = _check_link(n, stream, report)
            if ok and not report.failures:
                report.events_verified += 1
            if tree.size in sizes:
                roots[tree.size] = tree.root()
        start = page[-1].id
        if progress is not None:
            progress(start, total)
    roots[tree.size] = tree.root()
    report.streams_checked = len(streams)
    return roots


def _check_streams(app: Any, report: Report) -> None:
    """Every stream reads back whole through the application's own lookup (by its canonical
    id), and every snapshot of every aggregate equals a replay of its stream."""
    from domain.application import _fold

    for oid, stream in report.streams.items():
        found = app.recorder.select_events(oid)
        if len(found) != stream.events:
            report.fail(
                "stored_id",
                f"{stream.events} events of {oid} are in the log but {len(found)} are found "
                "under its id: the id column of some was changed",
            )
        if app.snapshots is None:
            continue
        for stored in app.snapshots.recorder.select_events(oid):
            try:
                snapshot = app.snapshots.mapper.to_domain_event(stored)
            except MapperDeserialisationError as error:
                if isinstance(error.__cause__, StaleState):
                    report.snapshots_stale += 1  # never used: an older format is replayed
                    continue
                report.fail("snapshot", f"the snapshot of {oid} cannot be read: {error}")
                continue
            except Exception as error:  # a forged topic or shape: named, never a crash
                report.fail("snapshot", f"the snapshot of {oid} cannot be read: {error!r}")
                continue
            report.snapshots_checked += 1
            try:
                kept = snapshot.mutate(None)
                replayed = _fold(None, app.events.get(oid, lte=stored.originator_version))
                same = _same(kept, replayed)
            except Exception:
                same = False
            if not same:
                report.fail(
                    "snapshot",
                    f"the snapshot of {oid} at version {stored.originator_version} differs "
                    "from a replay of its events (forged or corrupt)",
                )


def _check_link(n: Any, stream: _Stream, report: Report) -> bool:
    where = f"migration {n.originator_id} version {n.originator_version}"
    ok = True
    if n.originator_version != stream.version + 1:
        report.fail(
            "stream_order",
            f"{where} follows version {stream.version}: a version is missing or out of order",
            n.id,
        )
        ok = False
    try:
        state = json.loads(bytes(n.state))
    except (ValueError, RecursionError):
        state = None
    if not isinstance(state, dict):
        report.fail("stored_event", f"{where} is not a stored event's JSON object", n.id)
        state, ok = {}, False
    prev = state.get(PREV)
    if prev is not None:
        expected = GENESIS if n.originator_version == 1 else stream.link
        if prev != expected:
            report.fail(
                "stream_link",
                f"{where} commits to a predecessor that is not the stored one "
                "(an earlier event was changed, removed or reordered)",
                n.id,
            )
            ok = False
        stream.linked = True
        report.links_began = True
        report.events_linked += 1
    elif report.links_began:
        # Links began with some earlier event of the log: every later one carries one.
        report.fail("stream_link", f"{where} carries no link, written after links began", n.id)
        ok = False
    stream.version = n.originator_version
    stream.link = link(n.originator_id, n.originator_version, n.topic, bytes(n.state))
    return ok


def _check_head(
    report: Report,
    head: TreeHead,
    public_key: Ed25519PublicKey | None,
    roots: dict[int, bytes],
    check: str,
) -> bool:
    report.heads_checked += 1
    if public_key is None:
        report.fail(check, f"no public key to check the head at size {head.tree_size} with")
        return False
    problem = verify_head(head, public_key)
    if problem is not None:
        report.fail(check, f"the head at size {head.tree_size} is not genuine: {problem}")
        return False
    root = roots.get(head.tree_size)
    if root is None:
        report.fail(
            check,
            f"the signed head covers {head.tree_size} events but the store holds "
            f"{max(roots)}: events were deleted",
            max(roots) + 1,
        )
        return False
    if root.hex() != head.root_hash:
        report.fail(
            check,
            f"the root recomputed from the stored events at size {head.tree_size} differs from "
            "the signed head: a stored event was changed",
        )
        return False
    return True


def _check_against(
    report: Report,
    against: TreeHead,
    latest: TreeHead | None,
    public_key: Ed25519PublicKey | None,
    roots: dict[int, bytes],
    reader: Any | None,
) -> None:
    if not _check_head(report, against, public_key, roots, "against"):
        return
    if latest is None or latest.tree_size < against.tree_size:
        report.fail("against", "the ledger holds no signed head at or after the saved one")
        return
    if latest.key_id != against.key_id:
        report.fail("against", "the latest head is signed with another key than the saved one")
        return
    try:
        proof = reader.consistency(against.tree_size, latest.tree_size) if reader else None
    except LookupError:
        proof = None
    good = proof is not None and merkle.verify_consistency(
        against.tree_size,
        latest.tree_size,
        bytes.fromhex(against.root_hash),
        bytes.fromhex(latest.root_hash),
        proof,
    )
    if not good:
        report.fail("against", "no valid consistency proof from the saved head to the latest")


def _same(kept: Any, replayed: Any) -> bool:
    """Every attribute a snapshot restores (state, version, times, chain head) as replayed."""
    if replayed is None or type(kept) is not type(replayed):
        return False
    ignore = {"_pending_events"}
    mine = {k: v for k, v in vars(kept).items() if k not in ignore}
    theirs = {k: v for k, v in vars(replayed).items() if k not in ignore}
    return mine == theirs


def _check_views(app: Any, read_side: Any | None, report: Report) -> dict[str, Any]:
    if read_side is None:
        return {"status": "not_checked"}
    position, head = read_side.runner.position(), read_side.runner.head()
    rows = read_side.view.fetch("SELECT COUNT(*) AS n FROM {audit}")[0]["n"]
    if position == 0 and head > 0 and not rows:
        return {"status": "not_projected", "lag": head}
    audit = verify_audit_view(read_side.view, app, None)
    views: dict[str, Any] = {"status": "checked", "lag": head - position, "audit": audit}
    if not audit.get("ok"):
        report.fail("audit_view", audit.get("reason", "the audit view differs from the store"),
                    audit.get("first_bad_position"))  # fmt: skip
    if position > head:
        report.fail("views_ahead", f"the views claim position {position}; the store ends at {head}")
    elif head > position:
        report.fail("views_lag", f"the views lag the store by {head - position} events")
    views["migrations"] = _check_migrations_view(app, read_side, report)
    return views


def _check_migrations_view(app: Any, read_side: Any, report: Report) -> dict[str, Any]:
    """Each row of the current-state view holds the state a replay of its events gives, and
    its search row (what `?q=` finds it by) the replay's name and tenant."""
    from domain.state import replay
    from projections.rows import load_state, search_row

    checked = 0
    for row in read_side.view.fetch_iter(
        "SELECT m.id, m.version, m.state, s.customer_name AS s_name, s.tenant_id AS s_tenant "
        "FROM {migrations} m LEFT JOIN {migration_search} s ON s.id = m.id"
    ):
        checked += 1
        searchable = True
        try:
            events = app.history(UUID(row["id"]))
            replayed = replay(events)
            good = (
                len(events) == int(row["version"])
                and load_state(row["state"]).to_dict() == replayed.to_dict()
            )
            expected = search_row(row["id"], 0, replayed.customer_name, replayed.tenant_id)
            searchable = (row["s_name"], row["s_tenant"]) == expected[2:]
        except Exception:
            good = False
        if not good:
            report.fail("migrations_view", f"the row of migration {row['id']} differs from a "
                        "replay of its events")  # fmt: skip
        elif not searchable:
            report.fail("migrations_view", f"the search row of migration {row['id']} is "
                        "missing or differs from a replay of its events")  # fmt: skip
    [extra] = read_side.view.fetch(
        "SELECT COUNT(*) AS n FROM {migration_search} s "
        "WHERE NOT EXISTS (SELECT 1 FROM {migrations} m WHERE m.id = s.id)"
    )
    if extra["n"]:
        report.fail("migrations_view", f"{extra['n']} search rows have no migration")
    return {"rows_checked": checked}
