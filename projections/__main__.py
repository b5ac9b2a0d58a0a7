"""`python -m projections`: an alias of `csp-tracker` (api/cli.py), kept for scripts.

`python -m projections run` is `csp-tracker project`; `--batch-size` may come before the command,
as it used to. The store is configured as for `csp-tracker` (CSP_TRACKER_* variables or
options), except that when PERSISTENCE_MODULE is set, the eventsourcing variables this module
used to read (PERSISTENCE_MODULE, SQLITE_DBNAME, POSTGRES_*) select the store, as they did.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence

# The eventsourcing variable, and the CSP_TRACKER_* setting it stands for.
_LEGACY_ENV = {
    "SQLITE_DBNAME": "CSP_TRACKER_SQLITE_PATH",
    "POSTGRES_HOST": "CSP_TRACKER_POSTGRES_HOST",
    "POSTGRES_PORT": "CSP_TRACKER_POSTGRES_PORT",
    "POSTGRES_DBNAME": "CSP_TRACKER_POSTGRES_DB",
    "POSTGRES_USER": "CSP_TRACKER_POSTGRES_USER",
    "POSTGRES_PASSWORD": "CSP_TRACKER_POSTGRES_PASSWORD",
    "POSTGRES_SCHEMA": "CSP_TRACKER_POSTGRES_SCHEMA",
    "POSTGRES_CONNECT_TIMEOUT": "CSP_TRACKER_POSTGRES_CONNECT_TIMEOUT",
}
_BATCHED = ("project", "rebuild")


def legacy_env(environ: MutableMapping[str, str]) -> None:
    """When PERSISTENCE_MODULE is set, the CSP_TRACKER_* settings its variables stand for."""
    module = environ.get("PERSISTENCE_MODULE")
    if not module:
        return
    # eventsourcing.sqlite or eventsourcing.postgres; anything else fails as a bad setting.
    environ["CSP_TRACKER_STORE"] = module.removeprefix("eventsourcing.")
    for old, new in _LEGACY_ENV.items():
        if environ.get(old):
            environ[new] = environ[old]


def legacy_args(argv: Sequence[str]) -> list[str]:
    """`run` is `project`; `--batch-size N` moves after the command that takes it."""
    rest: list[str] = []
    batch: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--batch-size":
            batch += [arg, next(args, "")]
        elif arg.startswith("--batch-size="):
            batch.append(arg)
        else:
            rest.append(arg)
    command = next((i for i, arg in enumerate(rest) if not arg.startswith("-")), None)
    if command is not None and rest[command] == "run":
        rest[command] = "project"
    if command is not None and rest[command] in _BATCHED:
        rest += batch
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    from api.cli import main as cli_main

    legacy_env(os.environ)
    return cli_main(legacy_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
