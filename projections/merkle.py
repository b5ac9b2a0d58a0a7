"""RFC 6962 Merkle tree over stored perfect subtrees, with offline proof verifiers.

The tree is kept as the perfect subtrees it has completed: node (level, index) is the hash of
leaves [index * 2**level, (index + 1) * 2**level). Those nodes never change once written, so a
store can append them and never update a row; every root and proof for any past tree size is
then built from O(log n) lookups. Everything here is pure: the caller supplies the lookup
`node(level, index) -> bytes` and stores what `new_nodes` returns.

The verifiers need nothing but hashes, so an auditor can run them without the store. They
follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 and return False, never raise, on bad input.

Why not pymerkle: it keeps the tree in its own backends (in memory, or its own SQLite file),
so its nodes could not be written in the projection's transaction with the tracking record
(exactly-once), nor live in PostgreSQL beside the other views; what is needed here is small
and checked against the RFC's vectors and a reference implementation (tests/unit/test_merkle.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, MutableMapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeLookup = Callable[[int, int], bytes]
"""`node(level, index)`: the stored hash of perfect subtree (level, index)."""

Node = tuple[int, int, bytes]
"""(level, index, hash) of one perfect subtree, as stored."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf; the 0x00 prefix keeps a leaf from passing for an inner node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node; the 0x01 prefix separates it from leaf hashes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """RFC 6962's k: the largest power of two below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes (a hash, not leaf data)")


def new_nodes(size: int, leaf: bytes, node: NodeLookup) -> list[Node]:
    """Nodes to store when leaf hash `leaf` becomes leaf number `size`.

    The leaf itself at level 0, then one node per perfect subtree it completes: while the new
    node is a right child, its left sibling is already stored and their parent is now complete.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    _check_hash(leaf, "leaf")
    out = [(0, size, leaf)]
    level, index, value = 0, size, leaf
    while index & 1:
        value = node_hash(node(level, index - 1), value)
        level, index = level + 1, index >> 1
        out.append((level, index, value))
    return out


def new_nodes_batch(
    size: int,
    leaves: Iterable[bytes],
    node: NodeLookup,
    cache: MutableMapping[tuple[int, int], bytes] | None = None,
) -> list[Node]:
    """`new_nodes` for many leaves appended from `size` on, in one pass.

    Nodes made earlier in the batch are not in the store yet, so they are read back from
    `cache` (filled here; pass one to keep it), falling back to `node` for older ones.
    """
    made: MutableMapping[tuple[int, int], bytes] = {} if cache is None else cache

    def lookup(level: int, index: int) -> bytes:
        found = made.get((level, index))
        return found if found is not None else node(level, index)

    out: list[Node] = []
    for offset, leaf in enumerate(leaves):
        for level, index, value in new_nodes(size + offset, leaf, lookup):
            made[(level, index)] = value
            out.append((level, index, value))
    return out


def subtree(a: int, b: int, node: NodeLookup) -> bytes:
    """MTH(D[a:b]), splitting as RFC 6962 does.

    A range reached from [0, n) that is a power of two long is aligned, hence a stored node;
    other ranges (any a) recurse until they are, at worst down to leaves.
    """
    if not 0 <= a <= b:
        raise ValueError("need 0 <= a <= b")
    n = b - a
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and a % n == 0:
        return node(n.bit_length() - 1, a // n)
    k = _split(n)
    return node_hash(subtree(a, a + k, node), subtree(a + k, b, node))


def root(size: int, node: NodeLookup) -> bytes:
    """MTH of the first `size` leaves: one lookup per set bit of `size`."""
    return subtree(0, size, node)


def inclusion_proof(index: int, size: int, node: NodeLookup) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 section 2.1.1, leaf side first."""
    if not 0 <= index < size:
        raise ValueError("need 0 <= index < size")
    path: list[bytes] = []
    a, b = 0, size
    while b - a > 1:
        k = _split(b - a)
        if index < a + k:
            path.append(subtree(a + k, b, node))
            b = a + k
        else:
            path.append(subtree(a, a + k, node))
            a += k
    path.reverse()
    return path


def consistency_proof(first: int, second: int, node: NodeLookup) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 6962 section 2.1.2; empty when first is 0 or second."""
    if not 0 <= first <= second:
        raise ValueError("need 0 <= first <= second")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    a, b, whole = 0, second, True  # SUBPROOF(first - a, D[a:b], whole)
    while first != b:
        k = _split(b - a)
        if first <= a + k:
            proof.append(subtree(a + k, b, node))
            b = a + k
        else:
            proof.append(subtree(a, a + k, node))
            a, whole = a + k, False
    if not whole:
        proof.append(subtree(a, b, node))
    proof.reverse()
    return proof


def _hashes(proof: object) -> list[bytes] | None:
    """The proof as a list of hashes, or None if it is not one (verifiers must not raise)."""
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        return None
    items = list(proof)
    ok = all(isinstance(p, bytes) and len(p) == HASH_SIZE for p in items)
    return items if ok else None


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows leaf hash `leaf_hash` at `index` in the tree `root` of `size`.

    RFC 9162 section 2.1.3.2. The root does not commit to the size, so `root` and `size` must
    come together (from one signed tree head).
    """
    path = _hashes(proof)
    if path is None or not (_is_size(index) and _is_size(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree `first_root` of `first` leaves is a prefix of `second_root`.

    RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and equal roots. The empty tree
    is a prefix of every tree: first == 0 needs an empty proof and the empty root, and cannot
    say anything about `second_root`.
    """
    path = _hashes(proof)
    if path is None or not (_is_size(first) and _is_size(second) and first <= second):
        return False
    if not (_is_hash(first_root) and _is_hash(second_root)):
        return False
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


class MemoryTree:
    """The stored-node scheme in a dict: for tests, and for auditors rebuilding a tree offline."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self._size = 0
        self.extend(leaves)

    @property
    def size(self) -> int:
        return self._size

    def node(self, level: int, index: int) -> bytes:
        """Stored node; KeyError if absent, so a lookup of an unstored node shows up in tests."""
        return self.nodes[(level, index)]

    def append(self, data: bytes) -> int:
        """Append leaf data; returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> int:
        """Append an already hashed leaf; returns its index."""
        for level, index, value in new_nodes(self._size, leaf, self.node):
            self.nodes[(level, index)] = value
        self._size += 1
        return self._size - 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf data at once through `new_nodes_batch`."""
        self.extend_hashes(leaf_hash(d) for d in leaves)

    def extend_hashes(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes at once through `new_nodes_batch`."""
        made = new_nodes_batch(self._size, leaves, self.node)
        for level, index, value in made:
            self.nodes[(level, index)] = value
        self._size += sum(1 for level, _, _ in made if level == 0)

    def _size_or_current(self, size: int | None) -> int:
        size = self._size if size is None else size
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} outside 0..{self._size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return root(self._size_or_current(size), self.node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size_or_current(size), self.node)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        return consistency_proof(first, self._size_or_current(second), self.node)
