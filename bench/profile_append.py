"""Profile the HTTP append path: py-spy samples a real uvicorn server (GIL-holding threads
only) under the append load (wrk with bench/events.lua, single events, 8 connections), and this
prints the functions with the largest inclusive share.

Usage: python -m bench.profile_append [--store sqlite|postgres] [--seconds 8] [--prefer P]
Needs py-spy (pip install py-spy; the `bench` extra) and ptrace rights (root here).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.append_inprocess import load_targets
from bench.common import save_results, store
from bench.server import serving, wrk
from domain.application import Tracker


def summarise(raw: Path, top: int) -> tuple[list, list]:
    """(inclusive, self) shares of samples per function, largest first."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            key = f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]}"
            if key not in seen:
                inclusive[key] += n
                seen.add(key)
        own[key] += n  # the innermost frame

    def share(c: Counter[str]) -> list[tuple[float, str]]:
        return [(100 * n / total, k) for k, n in c.most_common(top)]

    return share(inclusive), share(own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--keep", help="copy py-spy's raw samples (collapsed stacks) here")
    parser.add_argument("--prefer", default="", help='a Prefer header, e.g. "return=minimal"')
    args = parser.parse_args()
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with store(args.store) as env, tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(env=env)
        _, token, id_file = load_targets(tracker, 100, Path(tmp))
        tracker.close()
        raw = Path(tmp) / "profile.txt"
        script = [str(id_file), token, "single", "1", args.prefer]
        with serving(env) as (url, proc):
            sampler = subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(proc.pid),
                    "-o",
                    str(raw),
                    "-f",
                    "raw",
                    "--gil",
                    "-d",
                    str(args.seconds),
                    "-r",
                    "200",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result = wrk(url, script, args.seconds, args.connections)
            sampler.wait(timeout=args.seconds + 30)
        inclusive, own = summarise(raw, args.top)
        if args.keep:
            shutil.copy(raw, args.keep)
    rate = result["statuses"].get("201", 0) / (result["duration_us"] / 1e6)
    print(f"\n{rate:.0f} events/s during the profile, p99 {result['p99_ms']:.1f} ms")
    for title, rows in (("inclusive", inclusive), ("self", own[:20])):
        print(f"\n| {title} % of GIL-holding samples | function |\n|---|---|")
        for pct, name in rows:
            print(f"| {pct:.1f} | `{name}` |")
    save_results(
        f"profile_append_{args.store}", {"load": result, "inclusive": inclusive, "self": own}
    )


if __name__ == "__main__":
    main()
