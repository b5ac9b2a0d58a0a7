"""The ledger over HTTP, on both stores: heads, the public key, and proofs that check."""

from __future__ import annotations

import base64

from projections import merkle
from projections.heads import TreeHead, load_public_key, verify_head
from projections.ledger import leaf_input
from tests.api.conftest import ORIGINAL, make_api


def _stocked(api) -> str:
    migration_id = api.new_migration()["id"]
    api.event(migration_id, ORIGINAL)
    api.client.app.state.read_side.issue_head(force=True)
    return migration_id


class TestHeads:
    def test_the_latest_head_is_signed_by_the_published_key(self, api, tmp_path):
        _stocked(api)
        head = api.get("auditor", "/v1/ledger/head")
        assert head.status_code == 200
        published = api.get("auditor", "/v1/ledger/public-key").json()
        pem = tmp_path / "pub.pem"
        pem.write_text(published["public_key_pem"])
        signed = TreeHead.from_dict(head.json())
        assert verify_head(signed, load_public_key(pem)) is None
        assert signed.key_id == published["key_id"]
        listed = api.get("auditor", "/v1/ledger/heads").json()["items"]
        assert listed[0] == head.json()

    def test_without_a_signing_key_there_is_no_head_and_no_key(self, store_env, tmp_path):
        for api in make_api(store_env, ledger_key=tmp_path / "absent.key"):
            _stocked(api)
            response = api.get("auditor", "/v1/ledger/head")
            assert response.status_code == 404
            assert response.json()["error"] == "no_signed_head"
            assert api.get("auditor", "/v1/ledger/public-key").status_code == 404
            verified = api.get("auditor", "/v1/audit/verify").json()
            assert verified["ok"] is False
            assert verified["events_verified"] == verified["events_in_store"]


class TestProofs:
    def test_an_inclusion_proof_checks_against_the_signed_root(self, api):
        _stocked(api)
        head = api.get("auditor", "/v1/ledger/head").json()
        rows = api.get("auditor", "/v1/audit").json()["items"]
        position = rows[-1]["position"]
        proof = api.get(
            "auditor",
            "/v1/ledger/proof/inclusion",
            params={"position": position, "tree_size": head["tree_size"]},
        ).json()
        leaf = proof["leaf"]
        data = leaf_input(
            leaf["position"],
            leaf["originator_id"],
            leaf["version"],
            leaf["topic"],
            base64.b64decode(leaf["state"]),
        )
        assert merkle.verify_inclusion(
            proof["leaf_index"],
            head["tree_size"],
            merkle.leaf_hash(data),
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(head["root_hash"]),
        )

    def test_a_partner_gets_proofs_of_its_own_events_only(self, api):
        _stocked(api)
        size = api.get("auditor", "/v1/ledger/head").json()["tree_size"]
        ours = api.get("admin_a", "/v1/audit").json()["items"][0]["position"]
        params = {"position": ours, "tree_size": size}
        assert api.get("admin_a", "/v1/ledger/proof/inclusion", params=params).status_code == 200
        theirs = api.get("admin_b", "/v1/ledger/proof/inclusion", params=params)
        assert theirs.status_code == 404
        assert theirs.json()["error"] == "position_not_found"

    def test_a_consistency_proof_checks(self, api):
        migration_id = _stocked(api)
        first = api.get("auditor", "/v1/ledger/head").json()
        api.event(migration_id, {"type": "note_added", "text": "later"})
        api.client.app.state.read_side.issue_head(force=True)
        second = api.get("auditor", "/v1/ledger/head").json()
        assert second["tree_size"] > first["tree_size"]
        proof = api.get(
            "auditor",
            "/v1/ledger/proof/consistency",
            params={"first": first["tree_size"], "second": second["tree_size"]},
        ).json()
        assert merkle.verify_consistency(
            first["tree_size"],
            second["tree_size"],
            bytes.fromhex(first["root_hash"]),
            bytes.fromhex(second["root_hash"]),
            [bytes.fromhex(h) for h in proof["proof"]],
        )

    def test_sizes_beyond_the_ledger_are_not_found(self, api):
        # Well formed, but there is no such tree (yet): 404, like an unknown position; a
        # size the schema refuses (0) is 422.
        _stocked(api)
        for first, second in [(1, 10**9), (3, 2)]:
            response = api.get(
                "auditor",
                "/v1/ledger/proof/consistency",
                params={"first": first, "second": second},
            )
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "tree_not_found"
        zero = api.get("auditor", "/v1/ledger/proof/consistency", params={"first": 0, "second": 1})
        assert zero.status_code == 422


class TestVerifyOverHttp:
    def test_auditors_only(self, api):
        _stocked(api)
        assert api.get("admin_a", "/v1/audit/verify").status_code == 403
        result = api.get("auditor", "/v1/audit/verify").json()
        assert result["ok"] is True, result["failures"]
        assert result["events_verified"] == result["events_in_store"]
