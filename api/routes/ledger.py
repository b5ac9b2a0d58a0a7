"""The ledger: signed tree heads, the public key, and inclusion and consistency proofs."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import CurrentPrincipal, ReadSideDep, TrackerDep
from api.errors import ApiError, errors_for
from api.schemas import ConsistencyProof, HeadPage, InclusionProof, PublicKey, SignedHead
from projections.heads import key_id, public_pem

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])


def _no_head() -> ApiError:
    return ApiError(404, "no_signed_head", "no tree head has been signed yet")


@router.get(
    "/head",
    response_model=SignedHead,
    summary="Get the latest signed tree head",
    responses=errors_for(401, 404, 422, 503, e404="No tree head has been signed yet"),
)
def get_latest_head(principal: CurrentPrincipal, read_side: ReadSideDep) -> dict[str, Any]:
    """The latest signed tree head: save it, and verify the store against it later."""
    latest = read_side.ledger.latest_head()
    if latest is None:
        raise _no_head()
    return latest.to_dict()


@router.get(
    "/heads",
    response_model=HeadPage,
    summary="List signed tree heads",
    responses=errors_for(401, 422, 503),
)
def list_heads(
    principal: CurrentPrincipal,
    read_side: ReadSideDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Heads per page (1..500)")] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Heads of a smaller tree size")
    ] = None,
) -> dict[str, Any]:
    """Signed tree heads, newest first."""
    items = read_side.ledger.heads(limit=limit, before=before)
    more = len(items) == limit and items[-1].tree_size > 1
    return {
        "items": [h.to_dict() for h in items],
        "next_before": items[-1].tree_size if more else None,
    }


@router.get(
    "/public-key",
    response_model=PublicKey,
    summary="Get the ledger's public key",
    responses=errors_for(401, 404, 422, 503, e404="This service has no ledger signing key"),
)
def get_public_key(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    """The Ed25519 public key heads are signed with (PEM), and its id."""
    policy = request.app.state.heads
    if policy is None:
        raise ApiError(404, "no_signing_key", "this service has no ledger signing key")
    key = policy.signer.public_key
    return {"key_id": key_id(key), "public_key_pem": public_pem(key)}


@router.get(
    "/proof/inclusion",
    response_model=InclusionProof,
    summary="Get an inclusion proof",
    responses=errors_for(
        401,
        404,
        422,
        503,
        e404="No event (of yours) at `position` (`position_not_found`), or no tree of "
        "`tree_size` leaves holding it: the ledger is smaller, or the event came later "
        "(`tree_not_found`)",
        e503="Store or read side unavailable, or the ledger out of step with the store",
    ),
)
def get_inclusion_proof(
    principal: CurrentPrincipal,
    read_side: ReadSideDep,
    tracker: TrackerDep,
    position: Annotated[int, Query(ge=1, le=2**62, description="The event's position")],
    tree_size: Annotated[int, Query(ge=1, le=2**62, description="A signed head's size")],
) -> dict[str, Any]:
    """The stored event at `position` and its audit path in the tree of `tree_size` leaves.
    A partner key gets proofs for its own partner's migration events only."""
    if principal.partner_id is not None:
        rows = read_side.view.fetch(
            "SELECT partner_id FROM {audit} WHERE position = ?", (position,)
        )
        if not rows or rows[0]["partner_id"] != principal.partner_id:
            raise ApiError(404, "position_not_found", f"no event of yours at {position}")
    index = read_side.ledger.leaf_index(position)
    if index is None:
        raise ApiError(404, "position_not_found", f"no event at position {position} in the ledger")
    size = read_side.ledger.size()
    if not index < tree_size <= size:
        # Well formed, but no such tree holds the event: not found, like an unknown position.
        raise ApiError(
            404,
            "tree_not_found",
            f"no tree of {tree_size} leaves holds the event: tree_size must be above the "
            f"leaf's index {index} and at most {size} (the ledger's size)",
            ledger_size=size,
        )
    found = tracker.recorder.select_notifications(position - 1, 1, inclusive_of_start=False)
    if not found or found[0].id != position:
        # Not the client's conflict: the ledger (a projection) and the store disagree.
        raise ApiError(
            503, "ledger_out_of_step", "the ledger names an event the store does not hold"
        )
    n = found[0]
    proof = read_side.ledger.inclusion(index, tree_size)
    return {
        "tree_size": tree_size,
        "leaf_index": index,
        "leaf": {
            "position": n.id,
            "originator_id": str(n.originator_id),
            "version": n.originator_version,
            "topic": n.topic,
            "state": base64.b64encode(bytes(n.state)).decode(),
        },
        "audit_path": [h.hex() for h in proof],
        "root_hash": read_side.ledger.root(tree_size).hex(),
    }


@router.get(
    "/proof/consistency",
    response_model=ConsistencyProof,
    summary="Get a consistency proof",
    responses=errors_for(
        401,
        404,
        422,
        503,
        e404="No such proof (`tree_not_found`): `second` exceeds the ledger's size, or "
        "`first` exceeds `second`",
    ),
)
def get_consistency_proof(
    principal: CurrentPrincipal,
    read_side: ReadSideDep,
    first: Annotated[
        int, Query(ge=1, le=2**62, description="The older tree's size (a signed head's)")
    ],
    second: Annotated[
        int,
        Query(
            ge=1,
            le=2**62,
            description="The newer tree's size: at least `first`, at most the ledger's size",
        ),
    ],
) -> dict[str, Any]:
    """The proof that the tree of `second` leaves extends the tree of `first` leaves."""
    size = read_side.ledger.size()
    if not first <= second <= size:
        # Well formed, but there is no such tree (yet), or no proof from a larger tree.
        raise ApiError(
            404,
            "tree_not_found",
            f"no proof from {first} to {second} leaves: need first <= second <= {size} "
            "(the ledger's size)",
            ledger_size=size,
        )
    proof = read_side.ledger.consistency(first, second)
    return {
        "first": first,
        "second": second,
        "first_root": read_side.ledger.root(first).hex(),
        "second_root": read_side.ledger.root(second).hex(),
        "proof": [h.hex() for h in proof],
    }
