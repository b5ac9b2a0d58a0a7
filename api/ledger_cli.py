"""csp-tracker's ledger commands: keys and heads, verify, exports with proofs, offline checks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from projections.heads import KeyFileError, Signer, TreeHead, load_public_key, public_pem


class CliError(Exception):
    """A refusal of the command line: printed as `error: <code>: <message>`, exit 2."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _key(path: Path) -> Any:
    try:
        return load_public_key(path)
    except KeyFileError as exc:
        raise CliError("invalid_public_key", str(exc)) from None


def saved_head(path: str) -> TreeHead:
    try:
        return TreeHead.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise CliError("invalid_head", f"{path}: {exc}") from None


def cmd_keygen(args: argparse.Namespace, settings: Any) -> int:
    try:
        signer = Signer.generate(settings.ledger_key)
    except KeyFileError as exc:
        raise CliError("key_exists", str(exc)) from None
    print(f"created {settings.ledger_key} (keep it outside the database, mode 0600)")
    print(f"key_id {signer.key_id}")
    print(public_pem(signer.public_key), end="")
    return 0


def cmd_public_key(args: argparse.Namespace, settings: Any) -> int:
    key = _key(settings.ledger_key)
    print(public_pem(key), end="")
    return 0


def cmd_head(args: argparse.Namespace, settings: Any, read_side: Any) -> int:
    if args.issue:
        if read_side.runner.projection.heads is None:
            raise CliError("no_signing_key", f"no signing key at {settings.ledger_key}")
        read_side.issue_head(force=True)
    head = read_side.ledger.latest_head()
    if head is None:
        raise CliError("no_signed_head", "no tree head has been signed yet (try --issue)")
    print(json.dumps(head.to_dict(), indent=2))
    return 0


def cmd_verify(args: argparse.Namespace, settings: Any, read_side: Any, progress: Any) -> int:
    key_path = Path(args.public_key) if args.public_key else settings.ledger_key
    public_key = _key(key_path) if (args.public_key or key_path.exists()) else None
    against = saved_head(args.against) if args.against else None
    if against is None and not args.public_key and key_path.exists():
        # The signer's own record of the last head it signed: deleting the stored heads and
        # rebuilding the ledger cannot hide a rewrite from it.
        against = Signer.from_file(key_path).last_head()
    result = read_side.verify(public_key, against, progress)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


def cmd_verify_export(args: argparse.Namespace) -> int:
    from projections.proofs import verify_export

    public_key = _key(Path(args.public_key))
    against = saved_head(args.against) if args.against else None
    try:
        with open(args.file, encoding="utf-8") as f:
            result = verify_export(f, public_key, against)
    except OSError as exc:
        raise CliError("invalid_file", f"{args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError("invalid_file", f"{args.file} is not UTF-8 text") from None
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def export_proved(
    read_side: Any, tracker: Any, filters: dict[str, Any], against: TreeHead | None = None
) -> tuple[Any, Any]:
    """(lines, head): the audit rows matching `filters`, each with its proof, against a head
    signed now (or the latest, when this process has no key) that covers the views."""
    from projections.proofs import export_with_proofs

    if read_side.runner.projection.heads is not None:
        head = read_side.issue_head(force=True)  # covers every row exported
    else:
        read_side.catch_up()
        head = read_side.ledger.latest_head()  # rows after it are exported unanchored
    if head is None:
        raise CliError("no_signed_head", "no tree head to prove the rows against")
    rows = (row for page in _pages(read_side, filters) for row in page)
    return export_with_proofs(read_side, tracker, head, rows, against), head


def _pages(read_side: Any, filters: dict[str, Any]) -> Any:
    after = None
    while True:
        page, after = read_side.queries.audit(after=after, limit=1000, **filters)
        yield page
        if after is None:
            return


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    ledger = sub.add_parser("ledger", help="the ledger's signing key and signed tree heads")
    commands = ledger.add_subparsers(dest="ledger_command", required=True)
    commands.add_parser(
        "keygen", parents=[common], help="create the Ed25519 signing key (--ledger-key PATH)"
    )
    commands.add_parser("public-key", parents=[common], help="print the public key (PEM)")
    head = commands.add_parser("head", parents=[common], help="print the latest signed head")
    head.add_argument(
        "--issue", action="store_true", help="catch up and sign a head now (default: off)"
    )

    verify = sub.add_parser(
        "verify", parents=[common], help="verify the store, the ledger, snapshots and views"
    )
    verify.add_argument(
        "--against",
        help="a head saved earlier (JSON): prove nothing changed (default: the last head the "
        "signing key file recorded, when there is one and no --public-key)",
    )
    verify.add_argument(
        "--public-key",
        help="the public key heads must be signed with, PEM (default: the signing key's, when "
        "the key file is here)",
    )

    offline = sub.add_parser("verify-export", help="verify an export with proofs, offline")
    offline.add_argument("file", help="an export made with `export --format jsonl --with-proofs`")
    offline.add_argument(
        "--public-key", required=True, help="the ledger's public key, PEM (required)"
    )
    offline.add_argument(
        "--against",
        default=None,
        help="a head you saved: the export's head must be it, or extend it by the proof the "
        "export carries (export with --against) (default: none)",
    )


def print_error(exc: CliError) -> int:
    sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
    return 2
