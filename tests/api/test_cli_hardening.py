"""The csp-tracker command's operator paths (hardening issue, items 11 to 13), on both stores:
bad input is one line `error: <code>: <message>` and exit 2, one CLI (`python -m projections`
is an alias), and no command but the creating ones makes a SQLite store appear."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest

from api.cli import build_parser, main
from api.settings import Settings
from bench.server import settings_env
from domain.application import Tracker
from projections.schema import VIEWS
from tests.api.test_cli import cli  # noqa: F401 - the fixture
from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[2]


def one_error(err: str, code: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {code}: "), err
    return lines[0]


def is_sqlite(store_env: dict[str, str]) -> bool:
    return store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"


@pytest.fixture
def run(monkeypatch, capsys):
    """main() with no CSP_TRACKER_* variables but those a test sets."""
    for name in list(os.environ):
        if name.startswith("CSP_TRACKER_"):
            monkeypatch.delenv(name)

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


# -- 11: bad input ----------------------------------------------------------------------------
class TestBadInputIsOneLineAndExit2:
    def test_an_unknown_view(self, cli):  # noqa: F811
        code, out, err = cli("rebuild", "bogus")
        assert (code, out) == (2, "")
        line = one_error(err, "invalid_argument")
        assert "'bogus'" in line and all(view in line for view in VIEWS)

    def test_an_unknown_store_as_an_option_or_a_variable(self, run, monkeypatch):
        code, _, err = run("partners", "list", "--store", "bogus")
        assert code == 2
        assert "sqlite" in one_error(err, "invalid_argument")
        monkeypatch.setenv("CSP_TRACKER_STORE", "bogus")
        code, _, err = run("partners", "list")
        assert code == 2
        line = one_error(err, "invalid_setting")
        assert "CSP_TRACKER_STORE" in line and "'bogus'" in line

    def test_a_setting_of_the_wrong_type(self, run, monkeypatch):
        monkeypatch.setenv("CSP_TRACKER_POSTGRES_PORT", "five")
        code, _, err = run("partners", "list", "--store", "postgres")
        assert code == 2
        assert "postgres_port" in one_error(err, "invalid_setting")

    @pytest.mark.parametrize(
        "argv",
        [
            ("export", "--recorded-from", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
            ("export", "--recorded-to", "9999-12-31T23:59:59.999999-23:59"),  # after 9999
            ("export", "--recorded-to", "yesterday"),
            ("rebuild", "--batch-size", "0"),
            ("project", "--batch-size", "-5"),
        ],
    )
    def test_dates_out_of_range_and_batches_of_no_events(self, run, argv):
        code, _, err = run(*argv)
        assert code == 2
        assert argv[1] in one_error(err, "invalid_argument")

    def test_no_command(self, run):
        code, _, err = run()
        assert code == 2
        one_error(err, "invalid_argument")

    def test_a_sqlite_path_in_a_folder_that_does_not_exist(self, run):
        code, _, err = run("partners", "list", "--sqlite-path", "/nonexistent/x.db")
        assert code == 2
        assert one_error(err, "no_store") == "error: no_store: no store at /nonexistent/x.db"
        code, _, err = run(
            "partners", "add", "--id", "p", "--name", "P", "--region", "europe",
            "--sqlite-path", "/nonexistent/x.db",
        )  # fmt: skip
        assert code == 2
        assert "/nonexistent" in one_error(err, "no_store")

    def test_a_postgres_server_that_does_not_answer_fails_within_seconds(self, run, monkeypatch):
        # The option wins over the variable (the library reads CSP_TRACKER_POSTGRES_PORT too).
        monkeypatch.setenv("CSP_TRACKER_POSTGRES_PORT", PG["port"])
        monkeypatch.setenv("CSP_TRACKER_POSTGRES_DB", PG["dbname"])
        started = time.monotonic()
        code, _, err = run("partners", "list", "--store", "postgres", "--postgres-port", "1")
        assert time.monotonic() - started < 15  # the library's default waits 30 s
        assert code == 2
        line = one_error(err, "store_unavailable")
        assert "127.0.0.1:1" in line and "refused" in line

    def test_connections_time_out_after_the_setting(self):
        assert Settings(store="postgres").eventsourcing_env()["POSTGRES_CONNECT_TIMEOUT"] == "5"
        env = Settings(store="postgres", postgres_connect_timeout=2).eventsourcing_env()
        assert env["POSTGRES_CONNECT_TIMEOUT"] == "2"

    def test_a_store_that_cannot_be_opened(self, cli, store_env):  # noqa: F811
        if is_sqlite(store_env):
            Path(store_env["SQLITE_DBNAME"]).write_text("not a database, " * 100)
            code, _, err = cli("partners", "list")
            assert code == 2
            assert "not a database" in one_error(err, "store_unavailable")
        else:
            missing = f"missing_{uuid.uuid4().hex[:8]}"
            code, _, err = cli("partners", "list", "--postgres-schema", missing)
            assert code == 2
            assert missing in one_error(err, "no_store")


# -- 12: one CLI ------------------------------------------------------------------------------
def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


class TestOneCli:
    def test_version(self, run):
        code, out, _ = run("--version")
        assert (code, out) == (0, f"csp-tracker {version('csp-tracker')}\n")

    def test_every_option_says_what_it_is_and_its_default(self):
        for parser in all_parsers(build_parser()):
            for action in parser._actions:
                if isinstance(
                    action,
                    argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction,
                ):
                    continue
                where = f"{parser.prog} {action.option_strings or action.dest}"
                assert action.help, where
                if action.option_strings:
                    said = "(required)" if action.required else "default"
                    assert said in action.help, where

    def test_help_shows_defaults_the_stores_and_the_views(self, run):
        code, out, _ = run("serve", "--help")
        assert code == 0
        assert "(default: info)" in out
        assert "--store {sqlite,postgres}" in out
        code, out, _ = run("rebuild", "--help")
        out = " ".join(out.split())
        assert code == 0
        assert "{" + ",".join(VIEWS) + "}" in out
        assert "(default: 10000)" in out

    def test_lag(self, cli):  # noqa: F811
        assert cli("demo")[0] == 0
        code, out, _ = cli("lag")
        assert code == 0
        lag = json.loads(out)
        assert set(lag) == {*VIEWS, "projector"}
        for name in VIEWS:
            assert lag[name]["head"] > 200
            assert lag[name]["lag"] == lag[name]["head"] - lag[name]["position"] == 0
        # This command projects nothing itself; on PostgreSQL it names the active projector's
        # session, and none runs here.
        assert lag["projector"]["role"] == "off"
        assert lag["projector"].get("active") is None

    def test_empty_lists_have_a_header_and_say_they_are_empty(self, cli):  # noqa: F811
        assert cli("keys", "create", "--name", "a", "--role", "auditor")[0] == 0
        code, out, _ = cli("partners", "list")
        assert code == 0
        assert out.splitlines()[0].split() == ["ID", "REGION", "NAME"]
        assert out.splitlines()[1:] == ["(no partners)"]
        cli("keys", "revoke", "a")
        assert cli("partners", "add", "--id", "p1", "--name", "P", "--region", "europe")[0] == 0
        assert cli("partners", "list")[1].splitlines()[1:] == [f"{'p1':16} {'europe':16} P"]
        header, *rows = cli("keys", "list")[1].splitlines()
        assert header.split() == ["KEY", "ID", "NAME", "ROLE", "PARTNER", "STATUS"]
        assert len(rows) == 1 and rows[0].endswith("revoked")

    def test_an_empty_key_list(self, cli):  # noqa: F811
        assert cli("partners", "add", "--id", "p1", "--name", "P", "--region", "europe")[0] == 0
        code, out, _ = cli("keys", "list")
        assert code == 0
        assert out.splitlines()[1:] == ["(no keys)"]

    def test_export_counts_rows_not_lines(self, cli):  # noqa: F811
        assert cli("demo")[0] == 0
        code, out, err = cli("export", "--format", "jsonl")
        assert code == 0
        rows = len(out.splitlines())
        assert rows > 200
        assert err.endswith(f"exported {rows} rows\n")
        code, out, err = cli("export", "--format", "csv")
        assert code == 0
        assert len(list(csv.reader(io.StringIO(out)))) == rows + 1  # and a header
        assert err.endswith(f"exported {rows} rows\n")
        code, out, err = cli("export", "--format", "jsonl", "--with-proofs")
        assert code == 0
        assert len(out.splitlines()) == rows + 1  # and the head
        assert err.endswith(f"exported {rows} rows\n")

    def test_a_second_revoke_says_the_key_was_already_revoked(self, cli):  # noqa: F811
        cli("partners", "add", "--id", "p1", "--name", "P", "--region", "europe")
        cli("keys", "create", "--name", "k", "--role", "sales_agent", "--partner", "p1")
        code, out, _ = cli("keys", "revoke", "k")
        assert code == 0 and out.startswith("revoked ")
        code, out, _ = cli("keys", "revoke", "k")
        assert code == 0
        assert "already revoked" in out
        code, _, err = cli("keys", "revoke", "nobody")
        assert code == 2
        one_error(err, "unknown_key")


def alias(env: dict[str, str], *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "projections", *argv],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def clean_environ() -> dict[str, str]:
    store_names = ("CSP_TRACKER_", "PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_")
    return {k: v for k, v in os.environ.items() if not k.startswith(store_names)}


class TestPythonMProjectionsIsAnAlias:
    def test_it_reads_the_same_settings_and_answers_lag_and_version(self, store_env):
        Tracker(env=store_env).close()  # the store exists
        env = {**clean_environ(), **settings_env(store_env)}
        done = alias(env, "lag")
        assert done.returncode == 0, done.stderr
        assert set(json.loads(done.stdout)) == {*VIEWS, "projector"}
        done = alias(env, "--version")
        assert (done.returncode, done.stdout) == (0, f"csp-tracker {version('csp-tracker')}\n")

    def test_the_old_projector_invocation_still_runs_until_sigterm(self, store_env):
        from projections import ReadSide

        tracker = Tracker(env=store_env)
        read_side = ReadSide(tracker, store_env)
        try:
            tracker.register_partner("p1", "P", "europe")
            head = tracker.recorder.max_notification_id()
            # The eventsourcing variables, as tests/projections/test_kill.py passes them.
            env = {**clean_environ(), **store_env, "PYTHONPATH": str(ROOT)}
            process = subprocess.Popen(
                [sys.executable, "-m", "projections", "--batch-size", "10", "run"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 30
                while read_side.runner.position() < head:
                    assert process.poll() is None, process.stderr.read().decode()
                    assert time.monotonic() < deadline, "the projector made no progress"
                    time.sleep(0.05)
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=20) == 0
        finally:
            read_side.close()
            tracker.close()


# -- 13: no store made by accident --------------------------------------------------------------
READING_COMMANDS = [
    ("keys", "list"),
    ("keys", "revoke", "k"),
    ("partners", "list"),
    ("partners", "set-region", "--id", "p", "--region", "europe"),
    ("partners", "pin-certificate", "--id", "p", "--pem", "p.pem"),
    ("rebuild",),
    ("lag",),
    ("verify",),
    ("export",),
    ("ledger", "head"),
    ("project",),
]


class TestOnlyCreatingCommandsCreateAStore:
    def test_other_commands_in_another_folder_say_there_is_no_store(
        self, run, tmp_path, monkeypatch
    ):
        monkeypatch.chdir(tmp_path)
        expected = f"error: no_store: no store at {Path.cwd() / 'csp-tracker.db'}\n"
        for argv in READING_COMMANDS:
            code, out, err = run(*argv)
            assert (code, out, err) == (2, "", expected), argv
        assert list(tmp_path.iterdir()) == []
        code, _, _ = run("partners", "add", "--id", "p", "--name", "P", "--region", "europe")
        assert code == 0
        assert (tmp_path / "csp-tracker.db").exists()
        assert run("partners", "list")[0] == 0

    def test_keys_create_may_create_the_store(self, run, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        assert run("keys", "create", "--name", "a", "--role", "auditor")[0] == 0
        assert (tmp_path / "csp-tracker.db").exists()

    def test_a_store_not_made_yet(self, cli, store_env):  # noqa: F811
        code, out, err = cli("keys", "list")
        if is_sqlite(store_env):  # a file: refused, and not created
            path = Path(store_env["SQLITE_DBNAME"]).absolute()
            assert (code, out, err) == (2, "", f"error: no_store: no store at {path}\n")
            assert not path.exists()
        else:  # a schema: the command runs
            assert code == 0
            assert out.splitlines()[1:] == ["(no keys)"]
