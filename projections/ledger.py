"""The ledger: an RFC 6962 Merkle tree over every stored event, in notification order.

Leaf i is the i-th stored event (0-based, in notification order, whatever its aggregate):
    leaf input = position (8 bytes, big-endian) || originator id (16 bytes) || version (8 bytes,
                 big-endian) || length of the topic (4 bytes, big-endian) || topic (UTF-8)
                 || the stored state bytes, exactly as stored
    leaf hash  = SHA-256(0x00 || leaf input); node = SHA-256(0x01 || left || right)

It is a view of the projection (`ledger_leaves`, `ledger_nodes`: every perfect subtree, so a
root or a proof costs O(log n) lookups), written in the same transaction as the other views and
their tracking record: exactly once. Signed tree heads (`projections.heads`) anchor its roots;
they are kept in `ledger_heads`, which is never emptied by a rebuild.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from projections import merkle
from projections.heads import Signer, TreeHead

Node = Callable[[int, int], bytes]


class LedgerForked(Exception):
    """The ledger does not extend the last head the signer signed: history was rewritten."""


class RawEvent(Protocol):
    """A stored event with its position: the library's Notification."""

    id: int
    originator_id: UUID | str
    originator_version: int
    topic: str
    state: bytes


def leaf_input(position: int, originator_id: UUID | str, version: int, topic: str, state: bytes):
    uid = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    name = topic.encode()
    return (
        struct.pack(">Q", position)
        + uid.bytes
        + struct.pack(">Q", version)
        + struct.pack(">I", len(name))
        + name
        + bytes(state)
    )


def leaf_of(n: RawEvent) -> bytes:
    return merkle.leaf_hash(
        leaf_input(n.id, n.originator_id, n.originator_version, n.topic, n.state)
    )


def decomposition(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) that make up a tree of `size` leaves, left first."""
    out, offset = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, offset >> level))
            offset += 1 << level
    return out


class CompactRange:
    """The root of a growing tree in O(log n) memory: for recomputing it from the store."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), largest first

    def append(self, leaf: bytes) -> None:
        level, h = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            h = merkle.node_hash(left, h)
            level += 1
        self._stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return merkle.EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = merkle.node_hash(left, h)
        return h


class LedgerView:
    """The ledger's tables, read and written through a ViewStore's connection `c`."""

    def __init__(self, view: Any) -> None:
        self.view = view

    # -- writing (inside the projection's transaction) ------------------------------------
    def size(self, c: Any) -> int:
        c.execute(self.view.sql("SELECT MAX(idx) AS m FROM {ledger_leaves}"))
        row = c.fetchone()
        return 0 if row is None or row["m"] is None else int(row["m"]) + 1

    def append(self, c: Any, events: Sequence[RawEvent]) -> tuple[int, bytes]:
        """Add `events` as the next leaves; the new size and root."""
        size = self.size(c)
        cache: dict[tuple[int, int], bytes] = {
            key: self._node(c, *key) for key in decomposition(size)
        }
        leaves, nodes = [], []
        for n in events:
            index = size
            h = leaf_of(n)
            cache[(0, index)] = h
            leaves.append((index, n.id, h.hex()))
            level = 0
            while index & 1:
                h = merkle.node_hash(cache[(level, index - 1)], h)
                level, index = level + 1, index >> 1
                cache[(level, index)] = h
                nodes.append((level, index, h.hex()))
            size += 1
        if leaves:
            self.view.insert_rows(c, "ledger_leaves", ("idx", "position", "hash"), leaves)
        if nodes:
            self.view.insert_rows(c, "ledger_nodes", ("level", "idx", "hash"), nodes)
        return size, merkle.root(size, lambda level, i: cache[(level, i)])

    def _node(self, c: Any, level: int, index: int) -> bytes:
        if level == 0:
            c.execute(self.view.sql("SELECT hash FROM {ledger_leaves} WHERE idx = ?"), (index,))
        else:
            c.execute(
                self.view.sql("SELECT hash FROM {ledger_nodes} WHERE level = ? AND idx = ?"),
                (level, index),
            )
        row = c.fetchone()
        if row is None:
            msg = f"ledger node ({level}, {index}) is missing"
            raise LookupError(msg)
        return bytes.fromhex(row["hash"])

    # -- heads ------------------------------------------------------------------------------
    def latest_head(self, c: Any) -> TreeHead | None:
        c.execute(self.view.sql("SELECT * FROM {ledger_heads} ORDER BY tree_size DESC LIMIT 1"))
        row = c.fetchone()
        return None if row is None else _head(row)

    def issue(
        self,
        c: Any,
        signer: Signer,
        size: int,
        root: bytes,
        now: datetime,
        *,
        every: int,
        seconds: float,
        force: bool = False,
    ) -> TreeHead | None:
        """Sign and store a head for (size, root) when one is due: the tree grew by `every`
        events, or `seconds` passed since the last head, or `force`. Never for a size at or
        below the latest head's (so a rebuild issues nothing)."""
        last = self.latest_head(c)
        if last is not None and size <= last.tree_size:
            return None
        if size == 0 and not force:
            return None
        due = force or last is None or size - last.tree_size >= every
        if not due and last is not None:
            elapsed = now - datetime.fromisoformat(last.timestamp)
            due = elapsed.total_seconds() >= seconds
        if not due:
            return None
        previous = signer.last_head()
        if previous is not None:
            if size <= previous.tree_size:
                return None
            proof = merkle.consistency_proof(
                previous.tree_size, size, lambda level, i: self._node(c, level, i)
            )
            if not merkle.verify_consistency(
                previous.tree_size, size, bytes.fromhex(previous.root_hash), root, proof
            ):
                raise LedgerForked(
                    f"the ledger at size {size} does not extend the head this key signed last "
                    f"(size {previous.tree_size}): the stored history was rewritten; not signing"
                )
        head = signer.sign(size, root, now)
        c.execute(
            self.view.sql(
                "INSERT INTO {ledger_heads} (tree_size, root_hash, timestamp, key_id, signature) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING"
            ),
            (head.tree_size, head.root_hash, head.timestamp, head.key_id, head.signature),
        )
        signer.remember(head)
        return head

    # -- reading ----------------------------------------------------------------------------
    def reader(self) -> LedgerReader:
        return LedgerReader(self)


class LedgerReader:
    """Proofs and heads, each read in one transaction."""

    def __init__(self, ledger: LedgerView) -> None:
        self.ledger = ledger
        self.view = ledger.view

    def _with(self, work: Callable[[Any], Any]) -> Any:
        with self.view.read() as c:
            return work(c)

    def size(self) -> int:
        return int(self._with(self.ledger.size))

    def root(self, size: int) -> bytes:
        return self._with(lambda c: merkle.root(size, lambda lv, i: self.ledger._node(c, lv, i)))

    def leaf_index(self, position: int) -> int | None:
        rows = self.view.fetch("SELECT idx FROM {ledger_leaves} WHERE position = ?", (position,))
        return None if not rows else int(rows[0]["idx"])

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self._with(
            lambda c: merkle.inclusion_proof(index, size, lambda lv, i: self.ledger._node(c, lv, i))
        )

    def consistency(self, first: int, second: int) -> list[bytes]:
        return self._with(
            lambda c: merkle.consistency_proof(
                first, second, lambda lv, i: self.ledger._node(c, lv, i)
            )
        )

    def latest_head(self) -> TreeHead | None:
        return self._with(self.ledger.latest_head)

    def head_at(self, size: int) -> TreeHead | None:
        rows = self.view.fetch("SELECT * FROM {ledger_heads} WHERE tree_size = ?", (size,))
        return _head(rows[0]) if rows else None

    def heads(self, limit: int = 100, before: int | None = None) -> list[TreeHead]:
        sql, params = "SELECT * FROM {ledger_heads}", []
        if before is not None:
            sql += " WHERE tree_size < ?"
            params.append(before)
        sql += " ORDER BY tree_size DESC LIMIT ?"
        params.append(limit)
        return [_head(r) for r in self.view.fetch(sql, params)]


def _head(row: Any) -> TreeHead:
    return TreeHead(
        int(row["tree_size"]), row["root_hash"], row["timestamp"], row["key_id"], row["signature"]
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def leaves_of(notifications: Iterable[RawEvent]) -> Iterable[bytes]:
    for n in notifications:
        yield leaf_of(n)
