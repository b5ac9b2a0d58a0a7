"""The csp-tracker command, in-process, on both stores."""

from __future__ import annotations

import json

import pytest

from api.cli import main
from api.settings import Settings
from bench.server import settings_env
from domain.access import authenticate
from domain.application import Tracker


@pytest.fixture
def cli(store_env, monkeypatch, capsys):
    for name, value in settings_env(store_env).items():
        monkeypatch.setenv(name, value)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def tracker_of(store_env):
    trackers = []

    def make() -> Tracker:
        trackers.append(Tracker(env=Settings().eventsourcing_env()))
        return trackers[-1]

    yield make
    for t in trackers:
        t.close()


class TestPartnersAndKeys:
    def test_a_created_key_authenticates_until_revoked(self, cli, tracker_of):
        assert cli("partners", "add", "--id", "p1", "--name", "P One", "--region", "Europe")[0] == 0
        code, out, err = cli("keys", "create", "--name", "k", "--role", "sales_agent",
                             "--partner", "p1")  # fmt: skip
        assert code == 0
        token = out.strip()
        assert token.startswith("csp_")
        assert "not shown again" in err
        tracker = tracker_of()
        key = authenticate(tracker, token)
        assert (key.role, key.partner_id) == ("sales_agent", "p1")
        assert "k" in cli("keys", "list")[1]
        assert cli("keys", "revoke", "k")[0] == 0
        assert authenticate(tracker_of(), token) is None
        assert "revoked" in cli("keys", "list")[1]

    def test_partners_are_listed_with_their_region(self, cli):
        cli("partners", "add", "--id", "p1", "--name", "P One", "--region", "Europe")
        assert "europe" in cli("partners", "list")[1]

    def test_an_unknown_region_is_refused_and_a_country_code_is_read_as_its_region(self, cli):
        code, _, err = cli("partners", "add", "--id", "p2", "--name", "P", "--region", "mars")
        assert code == 2
        assert "invalid_region" in err
        assert cli("partners", "add", "--id", "p3", "--name", "P", "--region", "SE")[0] == 0
        assert "p3" in cli("partners", "list")[1]
        assert "europe" in next(
            line for line in cli("partners", "list")[1].splitlines() if "p3" in line
        )

    def test_a_legacy_region_can_be_corrected(self, cli, tracker_of):
        from domain.commands import Command
        from domain.context import Context
        from domain.errors import RuleViolated
        from domain.partner import Partner

        tracker = tracker_of()
        legacy = Partner._create(
            Partner.Registered, id=Partner.key("old"), partner_id="old", name="Old", region="emea"
        )
        tracker.save(legacy)  # as stored before regions were validated
        request = Command.of(
            "relationship_requested",
            partner_id="old",
            tenant_id="c.example",
            customer_name="C",
            customer_region="SE",
            channel="direct",
        )
        with pytest.raises(RuleViolated, match="invalid_partner_region"):
            tracker.start(Context("s", "sales_agent"), request)
        code, out, _ = cli("partners", "set-region", "--id", "old", "--region", "europe")
        assert code == 0 and "now in europe" in out
        assert tracker_of().start(Context("s", "sales_agent"), request).migration.version == 1
        code, _, err = cli("partners", "set-region", "--id", "old", "--region", "europe")
        assert code == 2 and "region_unchanged" in err

    def test_refusals_exit_2_with_the_code(self, cli):
        code, _, err = cli("keys", "create", "--name", "k", "--role", "sales_agent",
                           "--partner", "nobody")  # fmt: skip
        assert code == 2
        assert "unknown_partner" in err

    def test_a_partner_key_needs_a_partner(self, cli):
        code, _, err = cli("keys", "create", "--name", "k", "--role", "account_admin")
        assert code == 2
        assert "partner_required" in err


class TestDemoAndTheAuditTrail:
    def test_demo_then_rebuild_verify_and_export(self, cli):
        code, out, _ = cli("demo")
        assert code == 0
        assert out.count("csp_") == 10
        # Each demo migration is listed with its stage and flags: the four seed steps walked
        # to completion, and risky customers among them.
        listed = [line.split() for line in out.splitlines() if line.startswith("  fabrikam ")]
        assert len(listed) == 14
        stages = {word for line in listed for word in line}
        assert {"invited", "accepted", "provisioning", "provisioned", "completed"} <= stages
        assert {"license_shortfall", "grace_period"} <= {w.strip(",") for w in stages}
        code, out, err = cli("rebuild")
        assert code == 0
        assert json.loads(out)["events"] > 200
        assert "[" in err  # the progress bar
        code, out, _ = cli("verify")
        assert code == 0
        assert json.loads(out)["ok"] is True
        code, out, err = cli("export", "--format", "jsonl", "--partner", "adatum")
        assert code == 0
        rows = [json.loads(line) for line in out.splitlines()]
        assert rows
        assert {r["partner_id"] for r in rows} == {"adatum"}
        assert f"exported {len(rows)} rows" in err
