"""csp-tracker: serve the API, run the projector, and operate keys, partners and the audit trail.

Settings come from CSP_TRACKER_* environment variables; the options below override them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn, cast, get_args
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError
from pydantic import ValidationError

from api import ledger_cli
from api.settings import Settings
from domain.application import Tracker
from domain.errors import DomainError
from projections.heads import KeyFileError
from projections.runner import REBUILD_BATCH_SIZE
from projections.schema import VIEWS

# Options that override a setting: (flag, settings field, type, what it is).
_SETTING_OPTIONS = [
    ("--store", "store", str, "the event store"),
    ("--sqlite-path", "sqlite_path", str, "the SQLite file, when --store sqlite"),
    ("--postgres-host", "postgres_host", str, "PostgreSQL host"),
    ("--postgres-port", "postgres_port", int, "PostgreSQL port"),
    ("--postgres-db", "postgres_db", str, "PostgreSQL database"),
    ("--postgres-user", "postgres_user", str, "PostgreSQL user"),
    ("--postgres-password", "postgres_password", str, "PostgreSQL password"),
    ("--postgres-schema", "postgres_schema", str, "PostgreSQL schema"),
    (
        "--postgres-connect-timeout",
        "postgres_connect_timeout",
        int,
        "seconds to wait for a PostgreSQL connection",
    ),
    ("--ledger-key", "ledger_key", str, "the ledger's Ed25519 signing key file"),
    ("--session-key", "session_key", str, "the web pages' session secret file"),
]
# The commands that may create a store; every other one refuses a SQLite file that is missing.
# (command, subcommand): the folder a command runs in must not silently get an empty store.
_CREATES_STORE = {("serve", None), ("demo", None), ("partners", "add"), ("keys", "create")}
# The commands that do not open the store at all.
_NO_STORE = {("ledger", "keygen"), ("ledger", "public-key"), ("verify-export", None)}


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        field: getattr(args, field)
        for field in [*(option[1] for option in _SETTING_OPTIONS), "host", "port"]
        if getattr(args, field, None) is not None
    }
    if getattr(args, "no_demo", False):
        overrides["demo_on_empty"] = False
    if getattr(args, "max_lag", None) is not None:
        overrides["max_lag"] = args.max_lag
    return Settings(**overrides)


def _env_name(field: str) -> str:
    return f"CSP_TRACKER_{field.upper()}"


def _setting_help(field: str, text: str) -> str:
    """`text`, then the default: the environment variable, else the setting's default."""
    default = Settings.model_fields[field].default
    shown = "empty" if default in ("", None) else default
    return f"{text} (default: ${_env_name(field)}, else {shown})"


def _subcommand(args: argparse.Namespace) -> tuple[str, str | None]:
    sub = None
    for name in ("keys_command", "partners_command", "ledger_command"):
        sub = sub or getattr(args, name, None)
    return args.command, sub


def _check_store(args: argparse.Namespace) -> None:
    """Refuse to open a SQLite store that is not there, except from the commands that create
    one: a command run from another folder would otherwise create (and read) an empty store."""
    command = _subcommand(args)
    if command in _NO_STORE:
        return
    settings = _settings(args)
    if settings.store != "sqlite":
        return
    name = str(settings.sqlite_path)
    if name == ":memory:" or name.startswith("file:"):  # in memory or a URI: nothing to check
        return
    path = settings.sqlite_path.absolute()
    if path.exists():
        return
    if command not in _CREATES_STORE:
        raise ledger_cli.CliError("no_store", f"no store at {path}")
    if not path.parent.is_dir():
        raise ledger_cli.CliError(
            "no_store", f"cannot create a store at {path}: no folder {path.parent}"
        )


def _store_unavailable(args: argparse.Namespace, exc: Exception) -> str:
    """Which store failed, and why. The pool only says it timed out, so for PostgreSQL one
    direct connection, briefly, finds the reason (refused, no such database, password...)."""
    try:
        s = _settings(args)
    except ValidationError:
        return f"the store: {exc}"
    if s.store == "sqlite":
        return f"SQLite store {Path(s.sqlite_path).absolute()}: {exc}"
    where = f"PostgreSQL {s.postgres_user}@{s.postgres_host}:{s.postgres_port}/{s.postgres_db}"
    try:
        psycopg.connect(
            host=s.postgres_host,
            port=s.postgres_port,
            dbname=s.postgres_db,
            user=s.postgres_user,
            password=s.postgres_password,
            connect_timeout=min(s.postgres_connect_timeout, 2),
        ).close()
    except psycopg.Error as reason:
        return f"{where}: {exc}: {reason}"
    return f"{where}: {exc}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _invalid_setting(exc: ValidationError) -> str:
    flags = {field: flag for flag, field, *_ in _SETTING_OPTIONS}
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        source = f"{flags[field]} or ${_env_name(field)}" if field in flags else _env_name(field)
        problems.append(f"{field} ({source}): {error['msg']}, got {error.get('input')!r}")
    return _one_line("; ".join(problems))


def _instant(text: str) -> datetime:
    """An ISO-8601 date and time (UTC when it names no offset) that is a UTC time too."""
    try:
        value = datetime.fromisoformat(text)
        (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        msg = f"not an ISO-8601 date and time within years 1 to 9999 in UTC: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _version() -> str:
    try:
        return version("csp-tracker")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


@contextmanager
def _tracker(args: argparse.Namespace) -> Iterator[Tracker]:
    from projections import startup_lock

    env = _settings(args).eventsourcing_env()
    with startup_lock(env, Tracker.name):  # its tables may be created now: one process at a time
        tracker = Tracker(env=env)
    try:
        yield tracker
    finally:
        tracker.close()


@contextmanager
def _read_side(args: argparse.Namespace) -> Iterator[Any]:
    from projections import ReadSide, startup_lock

    settings = _settings(args)
    env = settings.eventsourcing_env()
    batch = {"batch_size": args.batch_size} if getattr(args, "batch_size", None) else {}
    if getattr(args, "rebuild_batch_size", None):
        batch = {"rebuild_batch_size": args.rebuild_batch_size}
    # Tables may be created now (two `project` processes started together on a fresh schema):
    # one process at a time.
    with startup_lock(env, Tracker.name):
        tracker = Tracker(env=env)
        try:
            read_side = ReadSide(tracker, env, heads=settings.head_policy(), **batch)
        except BaseException:
            tracker.close()
            raise
    try:
        yield read_side
    finally:
        read_side.close()
        tracker.close()


def _progress(label: str) -> Any:
    """A progress callback `(done, total)`: Rich's bar on a terminal, a plain one in logs."""
    if sys.stderr.isatty():
        return _RichProgress(label)

    def show(done: int, total: int) -> None:
        width = 30
        filled = width if not total else int(width * min(done, total) / total)
        end = "\n" if total and done >= total else ""
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
        sys.stderr.flush()

    return show


class _RichProgress:
    """Rich's progress bar, started at the first report and stopped at the last."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None
        self._label = label

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=total or None)
        self._progress.update(self._task, completed=done, total=total or None)
        if total and done >= total:
            self._progress.stop()


def _print_demo(tracker: Tracker, tokens: dict[str, str]) -> None:
    from api.demo import overview

    print("Demo migrations (partner, customer, stage, risk flags now):")
    print("\n".join(overview(tracker)))
    _print_keys(tokens)


def _print_keys(tokens: dict[str, str]) -> None:
    print("API keys (shown once):")
    for name, token in tokens.items():
        print(f"  {name:28} {token}")


# -- commands -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.demo import load_demo, store_is_empty

    settings = _settings(args)
    url = f"http://{settings.host}:{settings.port}"

    _announce_key(settings)
    if settings.session_key is None:
        # Sessions of the web pages outlive a restart: their secret is a file, like the key.
        settings = settings.model_copy(update={"session_key": SESSION_KEY_FILE})

    def on_start(tracker: Tracker) -> None:
        if settings.demo_on_empty and store_is_empty(tracker):
            _print_demo(tracker, load_demo(tracker))
        elif settings.demo_on_empty:
            print(
                "The store holds data: no demo loaded, no keys printed. Make a key with "
                "`.venv/bin/csp-tracker keys create --name NAME --role account_admin "
                "--partner PARTNER` (or --role auditor without --partner).",
                flush=True,
            )
        print(f"OpenAPI docs: {url}/docs", flush=True)
        print(f"Dashboard: {url}/ (sign in with an API key: a csp_… string above)", flush=True)

    app = create_app(settings, on_start=on_start)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with _read_side(args) as read_side, suppress(KeyboardInterrupt):
        read_side.run_forever()
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    with _read_side(args) as read_side:
        # This command runs no projector ("role": "off"); on PostgreSQL, "active" names the
        # session of the process whose projector is active (null: none is).
        print(json.dumps({**read_side.lag(), "projector": read_side.projector()}))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    with _read_side(args) as read_side:
        result = read_side.rebuild(args.view, progress=_progress(args.view or "all views"))
    print(json.dumps(result, default=str))
    return 0


SESSION_KEY_FILE = Path("csp-tracker-session.key")


def _announce_key(settings: Settings) -> None:
    """The signing key of the ledger, created on first use; its id, for auditors to pin."""
    signer, created = settings.ensure_ledger_key()
    action = "created" if created else "using"
    print(
        f"Ledger signing key: {action} {settings.ledger_key} (key_id {signer.key_id})", flush=True
    )


def cmd_verify(args: argparse.Namespace) -> int:
    with _read_side(args) as read_side:
        return ledger_cli.cmd_verify(args, _settings(args), read_side, _progress("verify"))


def cmd_ledger(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.ledger_command == "keygen":
        return ledger_cli.cmd_keygen(args, settings)
    if args.ledger_command == "public-key":
        return ledger_cli.cmd_public_key(args, settings)
    with _read_side(args) as read_side:
        return ledger_cli.cmd_head(args, settings, read_side)


def cmd_export(args: argparse.Namespace) -> int:
    filters = {
        "partner_id": args.partner,
        "tenant_id": args.tenant,
        "migration_id": args.migration,
        "principal": args.principal,
        "role": args.role,
        "event_type": args.event_type,
        "recorded_from": args.recorded_from,
        "recorded_to": args.recorded_to,
    }
    # Each chunk is one row, after a first line that is not one: the CSV header, or the head
    # the rows are proved against. (Lines would over-count: a CSV cell may hold newlines.)
    rows, next_report = 0, 1000
    with _read_side(args) as read_side:
        # The rows to come, for the progress bar: what the audit view holds for these filters.
        total = read_side.queries.count_audit(**filters)
        progress = _progress("export")
        if args.with_proofs:
            if args.format != "jsonl":
                raise ledger_cli.CliError("invalid_format", "--with-proofs needs --format jsonl")
            against = ledger_cli.saved_head(args.against) if args.against else None
            chunks, _ = ledger_cli.export_proved(read_side, read_side.tracker, filters, against)
        else:
            chunks = read_side.queries.export(args.format, **filters)
        first_is_a_row = args.format == "jsonl" and not args.with_proofs
        for i, chunk in enumerate(chunks):
            sys.stdout.write(chunk)
            rows += 1 if i or first_is_a_row else 0
            if rows >= next_report:
                progress(rows, max(total, rows))
                next_report += 1000
        progress(rows, rows)
    sys.stdout.flush()
    sys.stderr.write(f"exported {rows} rows\n")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from domain.access import issue_key, list_keys, revoke_key

    with _tracker(args) as tracker:
        if args.keys_command == "create":
            issued = issue_key(tracker, args.name, args.role, args.partner)
            print(issued.token)
            sys.stderr.write(f"key {issued.key.key_id} ({args.name}): store it now, it is not "
                             "shown again\n")  # fmt: skip
        elif args.keys_command == "list":
            keys = list_keys(tracker)
            print(f"{'KEY ID':12}  {'NAME':28} {'ROLE':14} {'PARTNER':16} STATUS")
            for key in keys:
                status = "revoked" if key.revoked else "active"
                print(f"{key.key_id}  {key.name:28} {key.role:14} {key.partner_id or '*':16} "
                      f"{status}")  # fmt: skip
            if not keys:
                print("(no keys)")
        else:
            # Revoking is idempotent in the domain; look first, to say when it changed nothing.
            known = next((k for k in list_keys(tracker) if args.name in (k.name, k.key_id)), None)
            if known is not None and known.revoked:
                print(f"{known.key_id} ({known.name}) was already revoked")
            else:
                key = revoke_key(tracker, args.name)
                print(f"revoked {key.key_id} ({key.name})")
    return 0


def cmd_partners(args: argparse.Namespace) -> int:
    from domain.partner import Partner

    with _tracker(args) as tracker:
        if args.partners_command == "add":
            partner = tracker.register_partner(args.id, args.name, args.region)
            print(f"registered {partner.partner_id} ({partner.name}, {partner.region})")
        elif args.partners_command == "pin-certificate":
            from api.webhook import new_secret, read_certificate

            try:
                pem_bytes = open(args.pem, "rb").read()  # noqa: SIM115
            except OSError as exc:
                raise ledger_cli.CliError("invalid_file", f"{args.pem}: {exc.strerror}") from None
            pem, sha256 = read_certificate(pem_bytes)
            current = tracker.get_partner(args.id)
            secret, secret_sha256 = new_secret()
            fresh = args.new_secret or current.webhook_secret_sha256 is None
            partner = tracker.pin_certificate(
                args.id, pem, sha256, secret_sha256 if fresh else None
            )
            print(f"pinned certificate sha256 {sha256} for {partner.partner_id}")
            if fresh:
                # Shown once: only its hash is stored. Register this URL in Partner Center.
                print(
                    f"webhook path: /v1/ingest/partner-center/{partner.partner_id}?secret={secret}"
                )
            else:
                print("webhook path unchanged (its secret was set before; --new-secret rotates it)")
        elif args.partners_command == "set-region":
            partner = tracker.correct_partner_region(args.id, args.region)
            print(f"{partner.partner_id} is now in {partner.region}")
        else:
            topic = Partner.Registered.TOPIC
            print(f"{'ID':16} {'REGION':16} NAME")
            listed = 0
            for n in tracker.recorder.select_notifications(1, 1_000_000, topics=[topic]):
                partner = tracker.repository.get(cast(UUID, n.originator_id))
                print(f"{partner.partner_id:16} {partner.region:16} {partner.name}")
                listed += 1
            if not listed:
                print("(no partners)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from api.demo import load_demo

    settings = _settings(args)
    _announce_key(settings)
    with _tracker(args) as tracker:
        _print_demo(tracker, load_demo(tracker))
    # Anchor the demo at once: project it and sign a head, so `verify` has one to check.
    with _read_side(args) as read_side:
        head = read_side.issue_head(force=True)
    if head is not None:
        print(f"Signed tree head: size {head.tree_size}, root {head.root_hash}")
    return 0


# -- parser ---------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, `error: invalid_argument: <message>` (exit 2), not a usage
    dump; subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        raise ledger_cli.CliError("invalid_argument", f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("store (default: CSP_TRACKER_* environment variables)")
    for flag, field, kind, text in _SETTING_OPTIONS:
        if field == "store":  # the choices, as the metavar
            shown: dict[str, Any] = {"choices": get_args(Settings.model_fields[field].annotation)}
        else:  # PATH, HOST, PORT, ...
            shown = {"metavar": flag.rsplit("-", 1)[-1].upper()}
        group.add_argument(
            flag, dest=field, type=kind, default=None, help=_setting_help(field, text), **shown
        )

    parser = _Parser(prog="csp-tracker", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the API (and the projector)")
    serve.add_argument("--host", default=None, help=_setting_help("host", "address to listen on"))
    serve.add_argument(
        "--port", type=int, default=None, help=_setting_help("port", "port to listen on")
    )
    serve.add_argument(
        "--max-lag", type=int, default=None,
        help=_setting_help("max_lag", "readiness fails when the views lag more events than this"),
    )  # fmt: skip
    serve.add_argument(
        "--no-demo", action="store_true",
        help="do not load the demo into an empty store (default: load it, unless "
        "$CSP_TRACKER_DEMO_ON_EMPTY is false)",
    )  # fmt: skip
    serve.add_argument(
        "--log-level", default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="the server's log level (default: %(default)s)",
    )  # fmt: skip
    serve.set_defaults(run=cmd_serve)

    batch_size: dict[str, Any] = {
        "type": _positive,
        "default": 1000,
        "metavar": "N",
        "help": "events read and applied per transaction (default: %(default)s)",
    }
    project = sub.add_parser(
        "project", parents=[common], help="run the projector: catch up, then follow until SIGTERM"
    )
    project.add_argument("--batch-size", **batch_size)
    project.set_defaults(run=cmd_project)
    rebuild = sub.add_parser("rebuild", parents=[common], help="rebuild views from the store")
    rebuild.add_argument(
        "view", nargs="?", default=None, choices=list(VIEWS),
        help="the view to rebuild (default: all views)",
    )  # fmt: skip
    rebuild.add_argument(
        "--batch-size", dest="rebuild_batch_size",
        **{**batch_size, "default": REBUILD_BATCH_SIZE},
    )  # fmt: skip
    rebuild.set_defaults(run=cmd_rebuild)
    lag = sub.add_parser(
        "lag",
        parents=[common],
        help="each view's position, the store's head and the lag, and the active projector, JSON",
    )
    lag.set_defaults(run=cmd_lag)
    ledger_cli.add_commands(sub, common)
    sub.choices["verify"].set_defaults(run=cmd_verify)
    sub.choices["ledger"].set_defaults(run=cmd_ledger)
    sub.choices["verify-export"].set_defaults(run=lambda a: ledger_cli.cmd_verify_export(a))

    export = sub.add_parser("export", parents=[common], help="export audit rows to stdout")
    export.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default="csv",
        help="the output format (default: %(default)s)",
    )
    for flag, what in (
        ("--partner", "partner id"),
        ("--tenant", "customer tenant id"),
        ("--migration", "migration id"),
        ("--principal", "principal (who recorded the event)"),
        ("--role", "principal's role"),
        ("--event-type", "event type"),
    ):
        export.add_argument(flag, default=None, help=f"only rows with this {what} (default: all)")
    for flag, what in (("--recorded-from", "at or after"), ("--recorded-to", "before")):
        export.add_argument(
            flag, type=_instant, default=None, metavar="ISO-8601",
            help=f"only rows recorded {what} this time, UTC unless it has an offset "
            "(default: no limit)",
        )  # fmt: skip
    export.add_argument(
        "--with-proofs",
        action="store_true",
        help="jsonl only: each row with its stored event and inclusion proof, and a signed head "
        "(default: off)",
    )
    export.add_argument(
        "--against",
        default=None,
        help="with --with-proofs: a head you saved; the export carries the proof that its "
        "head extends it (default: none)",
    )
    export.set_defaults(run=cmd_export)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", parents=[common], help="create a key; prints the token")
    create.add_argument("--name", required=True, help="a unique name for the key (required)")
    create.add_argument(
        "--role", required=True,
        choices=["account_admin", "sales_agent", "billing_agent", "auditor"],
        help="what the key may do (required)",
    )  # fmt: skip
    create.add_argument(
        "--partner", default=None,
        help="the partner the key acts for; required except for auditors (default: none)",
    )  # fmt: skip
    keys.add_parser("list", parents=[common], help="list keys")
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key by name or id")
    revoke.add_argument("name", help="the key's name or id, as `keys list` shows them")
    sub.choices["keys"].set_defaults(run=cmd_keys)

    partners = sub.add_parser("partners", help="CSP partners").add_subparsers(
        dest="partners_command", required=True
    )
    add = partners.add_parser("add", parents=[common], help="register a partner and its region")
    add.add_argument("--id", required=True, help="the partner's id (required)")
    add.add_argument("--name", required=True, help="the partner's name (required)")
    add.add_argument(
        "--region",
        required=True,
        help="a CSP region, or a country code read as its region (required)",
    )
    fix = partners.add_parser(
        "set-region", parents=[common], help="correct a partner's region (a CSP region or country)"
    )
    fix.add_argument("--id", required=True, help="the partner's id (required)")
    fix.add_argument(
        "--region",
        required=True,
        help="a CSP region, or a country code read as its region (required)",
    )
    pin = partners.add_parser(
        "pin-certificate",
        parents=[common],
        help="pin the certificate Partner Center signs this partner's webhooks with",
    )
    pin.add_argument("--id", required=True, help="the partner's id (required)")
    pin.add_argument("--pem", required=True, help="the certificate, PEM (required)")
    pin.add_argument(
        "--new-secret",
        action="store_true",
        help="also make a new webhook secret (default: only when the partner has none yet)",
    )
    partners.add_parser("list", parents=[common], help="list partners")
    sub.choices["partners"].set_defaults(run=cmd_partners)

    sub.add_parser("demo", parents=[common], help="load the demo sample").set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Refusals and bad input print one line, `error: <code>: <message>`, on
    stderr and exit 2; a verify that finds a failure exits 1."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help or --version: printed, nothing to run
        return exc.code if isinstance(exc.code, int) else 0
    except ledger_cli.CliError as exc:  # bad arguments (_Parser.error)
        return ledger_cli.print_error(exc)
    try:
        _check_store(args)
        return args.run(args)
    except BrokenPipeError:  # e.g. `csp-tracker export | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except DomainError as exc:
        return _error(exc.code, exc.message)
    except ledger_cli.CliError as exc:
        return ledger_cli.print_error(exc)
    except KeyFileError as exc:
        return _error("invalid_signing_key", exc)
    except ValidationError as exc:  # a CSP_TRACKER_* variable (or option) out of range
        return _error("invalid_setting", _invalid_setting(exc))
    except (OperationalError, InterfaceError, psycopg.OperationalError, sqlite3.Error) as exc:
        return _error("store_unavailable", _store_unavailable(args, exc))
    except ProgrammingError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.InvalidSchemaName):
            raise
        return _error("no_store", _store_unavailable(args, exc))
    except (ValueError, OverflowError) as exc:  # e.g. a view the read side does not know
        return _error("invalid_input", exc)
    except OSError as exc:  # e.g. a key file in a folder that does not exist
        return _error("os_error", exc)


def _error(code: str, message: object) -> int:
    sys.stderr.write(f"error: {code}: {_one_line(message)}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
