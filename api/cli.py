"""csp-tracker: serve the API, run the projector, and operate keys, partners and the audit trail.

Settings come from CSP_TRACKER_* environment variables; the options below override them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from api import ledger_cli
from api.settings import Settings
from domain.application import Tracker
from domain.errors import DomainError
from projections.heads import KeyFileError

# Options that override a setting: (flag, settings field, type).
_SETTING_OPTIONS = [
    ("--store", "store", str),
    ("--sqlite-path", "sqlite_path", str),
    ("--postgres-host", "postgres_host", str),
    ("--postgres-port", "postgres_port", int),
    ("--postgres-db", "postgres_db", str),
    ("--postgres-user", "postgres_user", str),
    ("--postgres-password", "postgres_password", str),
    ("--postgres-schema", "postgres_schema", str),
    ("--ledger-key", "ledger_key", str),
]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        field: getattr(args, field)
        for _, field, _ in [*_SETTING_OPTIONS, ("", "host", str), ("", "port", int)]
        if getattr(args, field, None) is not None
    }
    if getattr(args, "no_demo", False):
        overrides["demo_on_empty"] = False
    if getattr(args, "max_lag", None) is not None:
        overrides["max_lag"] = args.max_lag
    return Settings(**overrides)


@contextmanager
def _tracker(args: argparse.Namespace) -> Iterator[Tracker]:
    tracker = Tracker(env=_settings(args).eventsourcing_env())
    try:
        yield tracker
    finally:
        tracker.close()


@contextmanager
def _read_side(args: argparse.Namespace) -> Iterator[Any]:
    from projections import ReadSide

    settings = _settings(args)
    env = settings.eventsourcing_env()
    tracker = Tracker(env=env)
    read_side = None
    try:
        read_side = ReadSide(tracker, env, heads=settings.head_policy())
        yield read_side
    finally:
        if read_side is not None:
            read_side.close()
        tracker.close()


def _progress(label: str) -> Any:
    def show(done: int, total: int) -> None:
        width = 30
        filled = width if not total else int(width * min(done, total) / total)
        end = "\n" if total and done >= total else ""
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
        sys.stderr.flush()

    return show


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

    def on_start(tracker: Tracker) -> None:
        if settings.demo_on_empty and store_is_empty(tracker):
            _print_demo(tracker, load_demo(tracker))
        print(f"OpenAPI docs: {url}/docs", flush=True)

    app = create_app(settings, on_start=on_start)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    with _read_side(args) as read_side, suppress(KeyboardInterrupt):
        read_side.run_forever()
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    with _read_side(args) as read_side:
        result = read_side.rebuild(args.view, progress=_progress(args.view or "all views"))
    print(json.dumps(result, default=str))
    return 0


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
    lines, next_report = 0, 1000
    with _read_side(args) as read_side:
        if args.with_proofs:
            if args.format != "jsonl":
                raise ledger_cli.CliError("invalid_format", "--with-proofs needs --format jsonl")
            chunks, _ = ledger_cli.export_proved(read_side, read_side.tracker, filters)
        else:
            chunks = read_side.queries.export(args.format, **filters)
        for chunk in chunks:
            sys.stdout.write(chunk)
            lines += chunk.count("\n")
            if lines >= next_report:
                sys.stderr.write(f"\rexported {lines} lines")
                next_report += 1000
    sys.stdout.flush()
    sys.stderr.write(f"\rexported {lines} lines\n")
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
            for key in list_keys(tracker):
                status = "revoked" if key.revoked else "active"
                print(f"{key.key_id}  {key.name:28} {key.role:14} {key.partner_id or '*':16} "
                      f"{status}")  # fmt: skip
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
        elif args.partners_command == "set-region":
            partner = tracker.correct_partner_region(args.id, args.region)
            print(f"{partner.partner_id} is now in {partner.region}")
        else:
            topic = Partner.Registered.TOPIC
            for n in tracker.recorder.select_notifications(1, 1_000_000, topics=[topic]):
                partner = tracker.repository.get(n.originator_id)
                print(f"{partner.partner_id:16} {partner.region:16} {partner.name}")
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
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("store (default: CSP_TRACKER_* environment variables)")
    for flag, field, kind in _SETTING_OPTIONS:
        group.add_argument(flag, dest=field, type=kind, default=None)

    parser = argparse.ArgumentParser(prog="csp-tracker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the API (and the projector)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--max-lag", type=int, default=None, help="readiness lag limit")
    serve.add_argument("--no-demo", action="store_true", help="do not load the demo when empty")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=cmd_serve)

    sub.add_parser("project", parents=[common], help="run the projector").set_defaults(
        run=cmd_project
    )
    rebuild = sub.add_parser("rebuild", parents=[common], help="rebuild views from the store")
    rebuild.add_argument("view", nargs="?", default=None, help="migrations, audit or summary")
    rebuild.set_defaults(run=cmd_rebuild)
    ledger_cli.add_commands(sub, common)
    sub.choices["verify"].set_defaults(run=cmd_verify)
    sub.choices["ledger"].set_defaults(run=cmd_ledger)
    sub.choices["verify-export"].set_defaults(run=lambda a: ledger_cli.cmd_verify_export(a))

    export = sub.add_parser("export", parents=[common], help="export audit rows to stdout")
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    for flag in ("--partner", "--tenant", "--migration", "--principal", "--role"):
        export.add_argument(flag, default=None)
    export.add_argument("--event-type", default=None)
    export.add_argument("--recorded-from", type=datetime.fromisoformat, default=None)
    export.add_argument("--recorded-to", type=datetime.fromisoformat, default=None)
    export.add_argument(
        "--with-proofs",
        action="store_true",
        help="jsonl only: each row with its stored event and inclusion proof, and a signed head",
    )
    export.set_defaults(run=cmd_export)

    keys = sub.add_parser("keys", help="API keys")
    keys = keys.add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", parents=[common], help="create a key; prints the token")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--role", required=True,
        choices=["account_admin", "sales_agent", "billing_agent", "auditor"],
    )  # fmt: skip
    create.add_argument("--partner", default=None, help="required except for auditors")
    keys.add_parser("list", parents=[common], help="list keys")
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key by name or id")
    revoke.add_argument("name")
    sub.choices["keys"].set_defaults(run=cmd_keys)

    partners = sub.add_parser("partners", help="CSP partners").add_subparsers(
        dest="partners_command", required=True
    )
    add = partners.add_parser("add", parents=[common], help="register a partner and its region")
    add.add_argument("--id", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--region", required=True)
    fix = partners.add_parser(
        "set-region", parents=[common], help="correct a partner's region (a CSP region or country)"
    )
    fix.add_argument("--id", required=True)
    fix.add_argument("--region", required=True)
    partners.add_parser("list", parents=[common], help="list partners")
    sub.choices["partners"].set_defaults(run=cmd_partners)

    sub.add_parser("demo", parents=[common], help="load the demo sample").set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `csp-tracker export | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except DomainError as exc:
        sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
        return 2
    except ledger_cli.CliError as exc:
        return ledger_cli.print_error(exc)
    except KeyFileError as exc:
        sys.stderr.write(f"error: invalid_signing_key: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
