"""projections.merkle against the RFC 6962 vectors, a naive RFC 6962 reference, and tampering.

The reference below is written straight from RFC 6962's recursive definitions (MTH, PATH,
PROOF/SUBPROOF) over the list of leaves, with hashlib only, so it shares no code with the
module under test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    new_nodes,
    new_nodes_batch,
    node_hash,
    root,
    subtree,
    verify_consistency,
    verify_inclusion,
)

# The repo's parent holds shared/ (in CI too, beside the clone), whatever the repo is called.
# The published vectors, copied from shared/data into the repository so a clone is complete.
VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "rfc6962-vectors.json"

REF_LEAVES = [b""] + [f"leaf {i}".encode() for i in range(1, 70)]


# --- naive reference, straight from RFC 6962 section 2.1 ---------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def ref_mth(d: tuple[bytes, ...]) -> bytes:
    if not d:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _k(len(d))
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    return ref_subproof(m, d, True)


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- helpers --------------------------------------------------------------------------------


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.fixture(scope="module")
def ref_tree() -> MemoryTree:
    return MemoryTree(REF_LEAVES)


def counting_fake_store(size: int) -> tuple[Callable[[int, int], bytes], list[tuple[int, int]]]:
    """Lookups into a (fake) tree of `size` leaves, refusing any node not yet complete."""
    calls: list[tuple[int, int]] = []

    def node(level: int, index: int) -> bytes:
        assert level >= 0 and index >= 0
        assert (index + 1) << level <= size, f"node ({level}, {index}) is not complete"
        calls.append((level, index))
        return _sha(f"{level}/{index}".encode())

    return node, calls


# --- RFC 6962 vectors -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors() -> dict:
    if not VECTORS.is_file():
        pytest.fail(f"RFC 6962 test vectors missing: {VECTORS} (shared/ must sit beside the repo)")
    return json.loads(VECTORS.read_text())


def test_hash_primitives():
    assert EMPTY_ROOT.hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)
    assert leaf_hash(b"") != EMPTY_ROOT


def test_rfc6962_vectors_every_tree_size(vectors):
    leaves = [bytes.fromhex(x) for x in vectors["leaf_inputs_hex"]]
    roots = [bytes.fromhex(x) for x in vectors["root_hashes_hex_by_tree_size"]]
    assert len(roots) == len(leaves) + 1 and roots[0] == EMPTY_ROOT
    one_by_one = MemoryTree()
    for data in leaves:
        one_by_one.append(data)
    batch = MemoryTree(leaves)
    for n, expected in enumerate(roots):
        assert one_by_one.root(n) == expected, n
        assert batch.root(n) == expected, n
        assert ref_mth(tuple(leaves[:n])) == expected, n  # the reference is right too


# --- against the reference ------------------------------------------------------------------


def test_roots_match_reference(ref_tree):
    assert ref_tree.size == 70
    for n in range(71):
        assert ref_tree.root(n) == ref_mth(tuple(REF_LEAVES[:n])), n
    assert MemoryTree().root() == EMPTY_ROOT


def test_subtree_of_any_range_matches_reference(ref_tree):
    for a in range(25):
        for b in range(a, 25):
            assert subtree(a, b, ref_tree.node) == ref_mth(tuple(REF_LEAVES[a:b])), (a, b)


def test_inclusion_proofs_match_reference(ref_tree):
    for n in range(1, 41):
        d = tuple(REF_LEAVES[:n])
        top = ref_mth(d)
        for m in range(n):
            proof = ref_tree.inclusion_proof(m, n)
            assert proof == ref_path(m, d), (m, n)
            assert verify_inclusion(m, n, leaf_hash(d[m]), proof, top), (m, n)


def test_consistency_proofs_match_reference(ref_tree):
    for n in range(0, 41):
        d = tuple(REF_LEAVES[:n])
        assert ref_tree.consistency_proof(0, n) == []
        assert verify_consistency(0, n, EMPTY_ROOT, ref_mth(d), [])
        for m in range(1, n + 1):
            proof = ref_tree.consistency_proof(m, n)
            assert proof == ref_proof(m, d), (m, n)
            assert verify_consistency(m, n, ref_mth(d[:m]), ref_mth(d), proof), (m, n)


# --- storage shape and cost -----------------------------------------------------------------


def test_stored_nodes_are_exactly_the_complete_perfect_subtrees(ref_tree):
    tree = MemoryTree()
    for n in range(1, 71):
        tree.append(REF_LEAVES[n - 1])
        expected = {(lv, i) for lv in range(8) for i in range(n >> lv) if (i + 1) << lv <= n}
        assert set(tree.nodes) == expected, n
        assert len(tree.nodes) == 2 * n - n.bit_count() < 2 * n
    assert tree.nodes == ref_tree.nodes


def test_new_nodes_returns_the_leaf_and_the_subtrees_it_completes():
    store: dict[tuple[int, int], bytes] = {}

    def node(level: int, index: int) -> bytes:
        return store[(level, index)]

    for s in range(70):
        leaf = leaf_hash(s.to_bytes(2, "big"))
        made = new_nodes(s, leaf, node)
        trailing_ones = (s ^ (s + 1)).bit_length() - 1
        assert made[0] == (0, s, leaf)
        assert len(made) == 1 + trailing_ones
        assert all((i + 1) << lv == s + 1 for lv, i, _ in made)
        store.update({(lv, i): value for lv, i, value in made})
        assert root(s + 1, node) == ref_mth(tuple(j.to_bytes(2, "big") for j in range(s + 1)))


def test_batch_reads_nodes_made_earlier_in_the_batch_from_its_cache():
    store = MemoryTree(REF_LEAVES[:5])  # the store only learns the batch afterwards
    hashes = [leaf_hash(d) for d in REF_LEAVES[5:40]]
    made_cache: dict[tuple[int, int], bytes] = {}
    made = new_nodes_batch(5, hashes, store.node, made_cache)
    assert made_cache == {(lv, i): v for lv, i, v in made}
    assert {(lv, i): v for lv, i, v in made} | store.nodes == MemoryTree(REF_LEAVES[:40]).nodes
    assert new_nodes_batch(0, [], store.node) == []


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000, 2**20, 2**40 + 12345, 2**63 - 1])
def test_lookups_are_logarithmic_and_only_of_complete_nodes(size):
    bits = size.bit_length()
    node, calls = counting_fake_store(size)
    root(size, node)
    assert len(calls) == size.bit_count()
    for index in {0, 1 % size, size // 3, size // 2, size - 2 if size > 1 else 0, size - 1}:
        calls.clear()
        proof = inclusion_proof(index, size, node)
        assert len(proof) <= bits and len(calls) <= 2 * bits, index
    for first in {1, 2, size // 3, size // 2, size - 1, size}:
        if not 1 <= first <= size:
            continue
        calls.clear()
        proof = consistency_proof(first, size, node)
        assert len(proof) <= 2 * bits and len(calls) <= 3 * bits, first


# --- exhaustive small trees: a proof verifies for its own claim only ------------------------


def test_each_inclusion_proof_verifies_only_its_own_index_and_size():
    n = 20
    tree = MemoryTree(REF_LEAVES[:n])
    roots = [tree.root(s) for s in range(n + 1)]
    claims = [(i, s) for s in range(1, n + 1) for i in range(s)]
    for i, s in claims:
        proof = tree.inclusion_proof(i, s)
        for i2, s2 in claims:
            ok = verify_inclusion(i2, s2, tree.node(0, i2), proof, roots[s2])
            assert ok == ((i2, s2) == (i, s)), (i, s, i2, s2)


def test_each_consistency_proof_verifies_only_its_own_sizes():
    n = 20
    tree = MemoryTree(REF_LEAVES[:n])
    roots = [tree.root(s) for s in range(n + 1)]
    claims = [(m, s) for s in range(n + 1) for m in range(s + 1)]
    for m, s in claims:
        proof = tree.consistency_proof(m, s)
        for m2, s2 in claims:
            ok = verify_consistency(m2, s2, roots[m2], roots[s2], proof)
            trivial = m2 in (0, s2)  # those take an empty proof, whatever the leaves
            assert ok == (proof == [] if trivial else (m2, s2) == (m, s)), (m, s, m2, s2)


def test_root_does_not_commit_to_size():
    """Why a verifier must take size and root together (one signed tree head).

    PATH(0, D[3]) = [leaf 1, leaf 2] has the same shape as PATH(0, D[4]), so the size-3 proof
    checks against the size-3 root *claimed* for size 4, though no size-4 tree has that root.
    """
    tree = MemoryTree(REF_LEAVES[:4])
    proof = tree.inclusion_proof(0, 3)
    assert verify_inclusion(0, 4, tree.node(0, 0), proof, tree.root(3))
    assert not verify_inclusion(0, 4, tree.node(0, 0), proof, tree.root(4))


# --- bad input: verifiers say False, provers refuse -----------------------------------------


def test_verifiers_return_false_on_bad_input():
    tree = MemoryTree(REF_LEAVES[:7])
    leaf, top, proof = tree.node(0, 2), tree.root(), tree.inclusion_proof(2)
    assert verify_inclusion(2, 7, leaf, proof, top)
    for index, size in [(7, 7), (8, 7), (-1, 7), (0, 0), (2, -7), (True, 7)]:
        assert not verify_inclusion(index, size, leaf, proof, top), (index, size)
    assert not verify_inclusion(0, 1, leaf, [], leaf[:-1])
    assert verify_inclusion(0, 1, leaf, [], leaf)  # a one-leaf tree's root is the leaf hash
    bad_proofs: list = [None, b"x" * 64, "ab", 3, [None], [b"short"], [*proof[:-1], proof[-1] * 2]]
    for bad in bad_proofs:
        assert not verify_inclusion(2, 7, leaf, bad, top), bad
        assert not verify_consistency(3, 7, tree.root(3), top, bad), bad
    for bad_hash in [None, b"", b"x" * 31, "0" * 32, 5]:
        assert not verify_inclusion(2, 7, bad_hash, proof, top)
        assert not verify_inclusion(2, 7, leaf, proof, bad_hash)
        assert not verify_consistency(3, 7, bad_hash, top, [])
        assert not verify_consistency(3, 7, top, bad_hash, [])

    r3, cons = tree.root(3), tree.consistency_proof(3, 7)
    assert verify_consistency(3, 7, r3, top, cons)
    assert not verify_consistency(7, 3, top, r3, cons)  # first > second
    assert not verify_consistency(-1, 7, EMPTY_ROOT, top, [])
    assert not verify_consistency(3, 7, r3, top, [])  # first < second needs a proof
    assert verify_consistency(7, 7, top, top, [])
    assert not verify_consistency(7, 7, top, top, [top])  # equal sizes: empty proof only
    assert not verify_consistency(7, 7, r3, top, [])
    assert verify_consistency(0, 7, EMPTY_ROOT, top, [])  # the empty tree prefixes any tree
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 7, EMPTY_ROOT, top, [top])
    assert not verify_consistency(0, 7, r3, top, [])  # not the empty tree's root


def test_provers_refuse_impossible_requests():
    tree = MemoryTree(REF_LEAVES[:5])
    for call in [
        lambda: tree.inclusion_proof(5),
        lambda: tree.inclusion_proof(-1),
        lambda: tree.inclusion_proof(0, 6),
        lambda: tree.consistency_proof(4, 3),
        lambda: tree.consistency_proof(1, 6),
        lambda: tree.root(6),
        lambda: subtree(3, 2, tree.node),
        lambda: tree.append_hash(b"not a hash"),
        lambda: new_nodes(-1, leaf_hash(b""), tree.node),
    ]:
        with pytest.raises(ValueError):
            call()


# --- properties -----------------------------------------------------------------------------

LEAF_LISTS = st.lists(st.binary(max_size=6), min_size=1, max_size=80, unique=True)
HASHES = st.binary(min_size=32, max_size=32)
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(leaves=LEAF_LISTS, data=st.data())
def test_inclusion_proof_verifies_and_any_change_fails(leaves, data):
    tree = MemoryTree(leaves)
    roots = [tree.root(s) for s in range(len(leaves) + 1)]
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    bit = data.draw(st.integers(0, 255), label="bit")
    extra = data.draw(HASHES, label="extra")
    leaf, top = leaf_hash(leaves[index]), roots[size]
    proof = tree.inclusion_proof(index, size)
    assert verify_inclusion(index, size, leaf, proof, top)

    def ok(i=index, s=size, lf=leaf, p=proof, r=top):
        return verify_inclusion(i, s, lf, p, r)

    assert not ok(lf=flip(leaf, bit))
    assert not any(ok(lf=leaf_hash(d)) for d in leaves if d != leaves[index])
    for k in range(len(proof)):
        assert not ok(p=[*proof[:k], flip(proof[k], bit), *proof[k + 1 :]]), k
    assert not any(ok(i=i) for i in range(size + 2) if i != index)
    assert not any(ok(s=s, r=roots[s]) for s in range(len(roots)) if s != size)
    assert not ok(r=flip(top, bit))
    assert not any(ok(r=r) for s, r in enumerate(roots) if s != size)
    if proof:
        assert not ok(p=proof[:-1])
        assert not ok(p=proof[1:])
    assert not ok(p=[*proof, extra])
    assert not ok(p=[extra, *proof])
    if len(proof) > 1:
        assert not ok(p=proof[::-1])


@FAST
@given(leaves=LEAF_LISTS, data=st.data())
def test_consistency_proof_verifies_and_any_change_fails(leaves, data):
    tree = MemoryTree(leaves)
    roots = [tree.root(s) for s in range(len(leaves) + 1)]
    second = data.draw(st.integers(1, len(leaves)), label="second")
    first = data.draw(st.integers(0, second), label="first")
    bit = data.draw(st.integers(0, 255), label="bit")
    extra = data.draw(HASHES, label="extra")
    r1, r2 = roots[first], roots[second]
    proof = tree.consistency_proof(first, second)
    assert verify_consistency(first, second, r1, r2, proof)

    def ok(m=first, n=second, a=r1, b=r2, p=proof):
        return verify_consistency(m, n, a, b, p)

    for k in range(len(proof)):
        assert not ok(p=[*proof[:k], flip(proof[k], bit), *proof[k + 1 :]]), k
    if proof:
        assert not ok(p=proof[:-1])
        assert not ok(p=proof[1:])
    assert not ok(p=[*proof, extra])
    assert not ok(p=[extra, *proof])
    if len(proof) > 1:
        assert not ok(p=proof[::-1])
    assert not ok(a=flip(r1, bit))
    assert not any(ok(a=r) for s, r in enumerate(roots) if s != first)
    if first:  # the empty tree is a prefix of any tree, so first == 0 ignores the second root
        assert not ok(b=flip(r2, bit))
        assert not any(ok(b=r) for s, r in enumerate(roots) if s != second)
    # Other sizes, each with its own genuine root: only the trivial empty-proof claims pass.
    for m in range(second + 1):
        if m != first:
            assert ok(m=m, a=roots[m]) == (not proof and m in (0, second)), m
    for n in range(first, len(roots)):
        if n != second:
            assert ok(n=n, b=roots[n]) == (not proof and first in (0, n)), n


@FAST
@given(
    leaves=st.lists(st.binary(max_size=4), max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=8),
)
def test_batch_append_equals_one_by_one(leaves, cuts):
    one = MemoryTree()
    for data in leaves:
        one.append(data)
    bounds = [0, *sorted(c for c in cuts if c <= len(leaves)), len(leaves)]
    batched = MemoryTree()
    for start, end in pairwise(bounds):
        batched.extend(leaves[start:end])
    assert batched.size == one.size == len(leaves)
    assert batched.nodes == one.nodes
    assert len(one.nodes) == 2 * len(leaves) - len(leaves).bit_count()
    assert len(one.nodes) < 2 * len(leaves) or not leaves
    assert one.root() == ref_mth(tuple(leaves))

    hashes = [leaf_hash(d) for d in leaves]
    expected: list = []
    store: dict[tuple[int, int], bytes] = {}
    for s, h in enumerate(hashes):
        made = new_nodes(s, h, lambda lv, i: store[(lv, i)])
        store.update({(lv, i): v for lv, i, v in made})
        expected += made
    assert new_nodes_batch(0, hashes, MemoryTree().node) == expected
