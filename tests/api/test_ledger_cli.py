"""The auditor's walk-through with the csp-tracker command, on both stores: save a head, verify
against it later, export with proofs and verify the export offline."""

from __future__ import annotations

import json

from tests.api.test_cli import cli  # noqa: F401 - the fixture


def _demo(cli):  # noqa: F811
    code, out, _ = cli("demo")
    assert code == 0
    assert "Signed tree head: size" in out


class TestTheAuditorsWalkThrough:
    def test_save_a_head_verify_against_it_and_verify_an_export_offline(self, cli, tmp_path):  # noqa: F811
        _demo(cli)
        code, out, _ = cli("ledger", "head")
        assert code == 0
        saved = tmp_path / "head.json"
        saved.write_text(out)
        code, pem, _ = cli("ledger", "public-key")
        public = tmp_path / "ledger.pub"
        public.write_text(pem)
        assert pem.startswith("-----BEGIN PUBLIC KEY-----")

        code, out, _ = cli("verify", "--against", str(saved), "--public-key", str(public))
        result = json.loads(out)
        assert code == 0 and result["ok"] is True, result["failures"]
        assert result["events_verified"] == result["events_in_store"] > 200
        assert result["against"]["tree_size"] == json.loads(saved.read_text())["tree_size"]

        code, out, _ = cli("export", "--format", "jsonl", "--with-proofs")
        assert code == 0
        export = tmp_path / "audit.jsonl"
        export.write_text(out)
        code, out, _ = cli("verify-export", str(export), "--public-key", str(public))
        result = json.loads(out)
        assert code == 0 and result["ok"] is True, result["failures"]
        assert result["rows"] == result["rows_verified"] > 200
        assert result["links_checked"] > 100

        # Later, with more events: the export proves that its head extends the saved one.
        code, _, _ = cli("keys", "create", "--name", "later", "--role", "auditor")
        assert code == 0
        assert cli("ledger", "head", "--issue")[0] == 0
        args = ("export", "--format", "jsonl", "--with-proofs")
        plain, extended = tmp_path / "plain.jsonl", tmp_path / "extended.jsonl"
        plain.write_text(cli(*args)[1])
        extended.write_text(cli(*args, "--against", str(saved))[1])
        offline = ("verify-export", "--public-key", str(public), "--against", str(saved))
        code, out, _ = cli(offline[0], str(extended), *offline[1:])
        assert code == 0 and json.loads(out)["ok"] is True, out
        code, out, _ = cli(offline[0], str(plain), *offline[1:])
        assert code == 1
        assert "no consistency proof" in json.loads(out)["failures"][0]["reason"]

    def test_an_export_edited_offline_is_caught(self, cli, tmp_path):  # noqa: F811
        _demo(cli)
        public = tmp_path / "ledger.pub"
        public.write_text(cli("ledger", "public-key")[1])
        lines = cli("export", "--format", "jsonl", "--with-proofs")[1].splitlines()
        row = json.loads(lines[3])
        row["row"]["payload"]["licenses"] = 1 + row["row"]["payload"].get("licenses", 0)
        lines[3] = json.dumps(row)
        export = tmp_path / "edited.jsonl"
        export.write_text("\n".join(lines) + "\n")
        code, out, _ = cli("verify-export", str(export), "--public-key", str(public))
        result = json.loads(out)
        assert code == 1 and result["ok"] is False
        assert result["failures"][0]["line"] == 4
        assert "does not say what its stored event says" in result["failures"][0]["reason"]

    def test_another_key_is_refused_offline(self, cli, tmp_path):  # noqa: F811
        from projections.heads import Signer, public_pem

        _demo(cli)
        export = tmp_path / "audit.jsonl"
        export.write_text(cli("export", "--format", "jsonl", "--with-proofs")[1])
        other = Signer.generate(tmp_path / "other.key")
        public = tmp_path / "other.pub"
        public.write_text(public_pem(other.public_key))
        code, out, _ = cli("verify-export", str(export), "--public-key", str(public))
        assert code == 1
        assert "not genuine" in json.loads(out)["failures"][0]["reason"]


class TestOperatorPaths:
    def test_keygen_refuses_to_overwrite_a_key(self, cli, tmp_path):  # noqa: F811
        key = tmp_path / "new.key"
        code, out, _ = cli("ledger", "keygen", "--ledger-key", str(key))
        assert code == 0 and "key_id" in out
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        code, _, err = cli("ledger", "keygen", "--ledger-key", str(key))
        assert code == 2 and "error: key_exists" in err

    def test_a_missing_saved_head_is_a_clear_error(self, cli, tmp_path):  # noqa: F811
        _demo(cli)
        code, _, err = cli("verify", "--against", str(tmp_path / "nope.json"))
        assert code == 2 and "error: invalid_head" in err

    def test_verify_fails_with_a_non_zero_exit_when_the_store_was_changed(self, cli, store_env):  # noqa: F811
        from tests.projections.test_tamper import RawStore

        _demo(cli)
        raw = RawStore(store_env)
        [(mid,)] = raw.run(
            f"SELECT originator_id FROM {raw.events} WHERE topic LIKE ? LIMIT 1",
            ("%original_subscription_recorded",),
        )
        from uuid import UUID

        mid = UUID(str(mid))
        state = raw.state(mid, 2)
        state["licenses"] = 5
        raw.set_state(mid, 2, state)
        code, out, _ = cli("verify")
        result = json.loads(out)
        assert code == 1 and result["ok"] is False
        assert result["first_bad_position"] is not None
        assert result["reason"]


class TestAFreshlyDemoedUnprojectedStore:
    def test_verify_checks_every_event_and_says_what_it_could_not(self, cli, store_env):  # noqa: F811
        from api.demo import load_demo
        from domain.application import Tracker

        tracker = Tracker(env=store_env)
        try:
            load_demo(tracker)  # through the commands only: no projection, no head
            stored = tracker.recorder.max_notification_id()
        finally:
            tracker.close()
        code, out, _ = cli("verify")
        result = json.loads(out)
        assert result["events_in_store"] == result["events_verified"] == stored > 200
        assert result["views"]["status"] == "not_projected"
        assert code == 1 and result["ok"] is False  # nothing anchors it yet, and it says so
        assert [f["check"] for f in result["failures"]] == ["signed_head"]
