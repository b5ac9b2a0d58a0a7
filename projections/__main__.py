"""`python -m projections run|rebuild [VIEW]|lag|verify`: the projector as its own process.

The store is configured by the same environment variables as the API (PERSISTENCE_MODULE,
SQLITE_DBNAME or POSTGRES_*), so several API instances and one (or more) of these share one
PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from domain.application import Tracker
from projections.readside import VIEW_NAMES, ReadSide
from projections.runner import text_progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projections")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="catch up, then follow new events until SIGTERM")
    rebuild = sub.add_parser("rebuild", help="empty views and re-project from position 0")
    rebuild.add_argument("view", nargs="?", choices=VIEW_NAMES)
    sub.add_parser("lag", help="tracked and head positions, as JSON")
    sub.add_parser("verify", help="check the audit hash chain against the store")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    env = dict(os.environ)
    tracker = Tracker(env=env)
    read_side = ReadSide(tracker, env, batch_size=args.batch_size)
    try:
        if args.command == "run":
            read_side.run_forever()
        elif args.command == "rebuild":
            result = read_side.rebuild(args.view, progress=text_progress(sys.stderr))
            print(
                f"rebuilt {args.view or 'all views'}: {result['events']} events in "
                f"{result['seconds']}s, {result['events_per_second']:,.0f} events/s"
            )
        elif args.command == "lag":
            print(json.dumps(read_side.lag()))
        elif args.command == "verify":
            result = read_side.queries.verify()
            print(json.dumps(result))
            return 0 if result["ok"] else 1
    finally:
        read_side.close()
        tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
