"""An audit export an auditor can verify offline, with no access to our database.

`export_with_proofs` writes JSON lines: first the signed tree head the rows are proved against,
then one line per audit row with the stored event it came from (the leaf: position, originator
id, version, topic and the stored state bytes in base64) and the leaf's inclusion proof.
`verify_export` checks such a file with nothing but the public key: the head's signature, each
leaf's inclusion in the signed tree, that each row says what its stored event says, and the
stream links between consecutive events of a migration. docs/audit.md gives the exact bytes.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.chain import GENESIS, PREV, link
from projections import merkle
from projections.heads import TreeHead, verify_head
from projections.ledger import leaf_input

FORMAT = "csp-tracker-audit-export/1"
# Stored-state keys that are not part of the audit row's payload.
_NOT_PAYLOAD = {"timestamp", "principal", "role", "occurred_at", "correlation_id", "class_version"}


def export_with_proofs(
    read_side: Any,
    app: Any,
    head: TreeHead,
    rows: Iterable[dict],
    against: TreeHead | None = None,
) -> Iterator[str]:
    """The export's lines, `rows` (audit rows) proved against `head`; with `against` (a head
    the auditor saved), the proof that `head`'s tree extends it."""
    from domain.decider import EVENTS

    # Rows show events as today's code reads them: fields a newer version of an event added
    # (by upcasting) are not in older stored bytes. The versions let a verifier tell.
    versions = {name: getattr(cls, "class_version", 1) for name, cls in EVENTS.items()}
    header: dict[str, Any] = {"format": FORMAT, "head": head.to_dict(), "class_versions": versions}
    if against is not None and 0 < against.tree_size < head.tree_size:
        proof = read_side.ledger.consistency(against.tree_size, head.tree_size)
        header["consistency"] = {"first": against.tree_size, "proof": [h.hex() for h in proof]}
    yield json.dumps(header) + "\n"
    reader = read_side.ledger
    for row in rows:
        position = row["position"]
        found = app.recorder.select_notifications(position - 1, 1, inclusive_of_start=False)
        if not found or found[0].id != position:
            raise LookupError(f"the store holds no event at position {position}")
        n = found[0]
        index = reader.leaf_index(position)
        anchored = index is not None and index < head.tree_size
        proof = reader.inclusion(index, head.tree_size) if anchored else None
        line = {
            "row": row,
            "leaf": {
                "index": index,
                "position": n.id,
                "originator_id": str(n.originator_id),
                "version": n.originator_version,
                "topic": n.topic,
                "state": base64.b64encode(bytes(n.state)).decode(),
            },
            "proof": None if proof is None else [h.hex() for h in proof],
        }
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def verify_export(
    lines: Iterable[str], public_key: Ed25519PublicKey, against: TreeHead | None = None
) -> dict[str, Any]:
    """Check an export with nothing but the public key (and, optionally, a head saved before:
    the export's head must be it, or extend it by the consistency proof in the header)."""
    failures: list[dict[str, Any]] = []
    rows = verified = unanchored = links = upcast = 0
    head: TreeHead | None = None
    versions: dict[str, int] = {}
    last_position = 0
    previous: dict[str, tuple[int, str]] = {}  # migration -> (version, link) of its last leaf

    def fail(line_no: int, reason: str) -> None:
        failures.append({"line": line_no, "reason": reason})

    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except (ValueError, RecursionError):
            if head is None:
                fail(line_no, f"not a {FORMAT} file (its first line is not JSON)")
                break
            fail(line_no, "not JSON")
            continue
        if head is None:
            if not isinstance(item, dict) or item.get("format") != FORMAT:
                fail(line_no, f"the first line must name the format {FORMAT}")
                break
            try:
                head = TreeHead.from_dict(item["head"])
            except (ValueError, KeyError) as exc:
                fail(line_no, str(exc))
                break
            raw_versions = item.get("class_versions", {})
            if isinstance(raw_versions, dict):
                versions = {str(k): v for k, v in raw_versions.items() if isinstance(v, int)}
            problem = verify_head(head, public_key)
            if problem is not None:
                fail(line_no, f"the head is not genuine: {problem}")
                break
            if against is not None:
                problem = _extends(against, head, item.get("consistency"), public_key)
                if problem is not None:
                    fail(line_no, problem)
                    break
            continue
        rows += 1
        try:
            position = item["row"]["position"]
            if not isinstance(position, int) or position <= last_position:
                fail(line_no, "rows must come once each, in increasing position")
                continue
            last_position = position
            problem = _check_row(item, head, versions)
        except (
            KeyError,
            TypeError,
            ValueError,
            OverflowError,
            RecursionError,
            struct.error,
        ) as exc:
            problem = f"malformed line: {exc!r}"
        if problem == "unanchored":
            unanchored += 1
            continue
        if problem == "upcast":
            upcast += 1
            problem = None
        if problem is not None:
            fail(line_no, problem)
            continue
        verified += 1
        leaf = item["leaf"]
        own = link(leaf["originator_id"], leaf["version"], leaf["topic"], _state(leaf))
        prev = json.loads(_state(leaf)).get(PREV)
        before = previous.get(leaf["originator_id"])
        if prev is not None and (before is not None and before[0] == leaf["version"] - 1):
            links += 1
            if prev != before[1]:
                fail(line_no, "its stream link does not match the previous event exported")
        elif prev is not None and leaf["version"] == 1 and prev != GENESIS:
            fail(line_no, "the first event of a migration must link to the genesis value")
        previous[leaf["originator_id"]] = (leaf["version"], own)
    if head is None and not failures:
        failures.append({"line": 1, "reason": "empty file"})
    return {
        "ok": not failures and unanchored == 0 and rows > 0,
        "rows": rows,
        "rows_verified": verified,
        "rows_unanchored": unanchored,
        "rows_upcast": upcast,
        "links_checked": links,
        "head": None if head is None else head.to_dict(),
        "failures": failures[:100],
    }


def _extends(
    saved: TreeHead, head: TreeHead, consistency: Any, key: Ed25519PublicKey
) -> str | None:
    """None if the export's `head` is the `saved` head or extends it, else why not."""
    problem = verify_head(saved, key)
    if problem is not None:
        return f"your saved head is not genuine: {problem}"
    if saved.tree_size == head.tree_size:
        return None if saved.root_hash == head.root_hash else "a different tree at your head's size"
    if saved.tree_size > head.tree_size:
        return "the export's head is older than yours: export again"
    if not isinstance(consistency, dict) or consistency.get("first") != saved.tree_size:
        return "the export carries no consistency proof from your head (export with --against)"
    try:
        proof = [bytes.fromhex(h) for h in consistency["proof"]]
        good = merkle.verify_consistency(
            saved.tree_size,
            head.tree_size,
            bytes.fromhex(saved.root_hash),
            bytes.fromhex(head.root_hash),
            proof,
        )
    except (KeyError, TypeError, ValueError):
        good = False
    return None if good else "the export's tree does not extend your saved head"


def _state(leaf: dict) -> bytes:
    return base64.b64decode(leaf["state"], validate=True)


def _check_row(item: dict, head: TreeHead, versions: dict[str, int]) -> str | None:
    row, leaf, proof = item["row"], item["leaf"], item["proof"]
    if proof is None:
        return "unanchored"
    state = _state(leaf)
    data = leaf_input(
        leaf["position"], leaf["originator_id"], leaf["version"], leaf["topic"], state
    )
    hashes = [bytes.fromhex(h) for h in proof]
    if not merkle.verify_inclusion(
        leaf["index"], head.tree_size, merkle.leaf_hash(data), hashes, bytes.fromhex(head.root_hash)
    ):
        return "the stored event is not in the signed tree (inclusion proof fails)"
    stored = json.loads(state)
    claims = {
        "position": row["position"] == leaf["position"],
        "migration_id": UUID(row["migration_id"]) == UUID(leaf["originator_id"]),
        "event_type": leaf["topic"].rpartition(":")[2] == row["event_type"],
        "recorded_at": _same(stored.get("timestamp"), row["recorded_at"]),
        "occurred_at": _same(stored.get("occurred_at"), row["occurred_at"]),
        "principal": stored.get("principal") == row["principal"],
        "role": stored.get("role") == row["role"],
        "correlation_id": stored.get("correlation_id") == row["correlation_id"],
    }
    payload = {k: v for k, v in stored.items() if k not in _NOT_PAYLOAD and not k.startswith("_")}
    payload.pop("originator_topic", None)
    shown = row["payload"]
    if stored.get("class_version", 1) < versions.get(row["event_type"], 1):
        # Stored by an older version of the event: the row shows it as today's version reads
        # it (upcast: fields added or reshaped), which only the project's upcasters can
        # reproduce. The stored bytes, which the proof covers, are in the leaf; here only that
        # no stored field is hidden is checked.
        claims["payload"] = set(payload) <= set(shown)
        claims["upcast"] = True
    else:
        claims["payload"] = set(payload) == set(shown) and all(
            _same(v, shown[k]) for k, v in payload.items()
        )
    wrong = [name for name, ok in claims.items() if not ok]
    if wrong:
        return f"the row does not say what its stored event says: {', '.join(wrong)}"
    return "upcast" if claims.get("upcast") else None


def _same(stored: Any, shown: Any) -> bool:
    """A value as the library stored it (its JSON transcoding) against the row's value."""
    if isinstance(stored, dict) and "_type_" in stored:
        kind, data = stored["_type_"], stored["_data_"]
        if kind == "datetime_iso":
            return isinstance(shown, str) and datetime.fromisoformat(
                data
            ) == datetime.fromisoformat(shown)
        if kind == "decimal_str":
            return shown is not None and Decimal(data) == Decimal(str(shown))
        return data == shown
    if isinstance(stored, list):
        return (
            isinstance(shown, list)
            and len(stored) == len(shown)
            and all(_same(a, b) for a, b in zip(stored, shown, strict=True))
        )
    return stored == shown
