"""A projector process killed with SIGKILL mid catch-up loses nothing and applies nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.generate import generate
from projections.ledger import CompactRange, leaf_of

ROOT = Path(__file__).resolve().parents[2]


def spawn_projector(store_env: dict[str, str], batch_size: int) -> subprocess.Popen:
    env = {**os.environ, **store_env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "projections", "--batch-size", str(batch_size), "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
class TestGivenAProjectorKilledMidCatchUp:
    def test_restart_ends_with_views_identical_to_a_clean_rebuild(self, app, read_side, store_env):
        generate(app, 3000)
        head = app.recorder.max_notification_id()
        runner = read_side.runner

        process = spawn_projector(store_env, batch_size=10)
        try:
            deadline = time.monotonic() + 60
            while runner.position() < head // 3:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "projector made no progress"
                time.sleep(0.005)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_at = runner.position()
        assert 0 < killed_at < head  # really killed in the middle

        restarted = spawn_projector(store_env, batch_size=10)
        try:
            read_side.wait(head, timeout=60)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(timeout=20) == 0
        resumed = read_side.view.dump(app.name)
        resumed_root = read_side.ledger.root(read_side.ledger.size())

        read_side.rebuild()
        assert resumed == read_side.view.dump(app.name)  # the ledger tables included
        assert read_side.queries.verify()["ok"]
        # The ledger's root equals the root recomputed from the stored events themselves.
        recomputed = CompactRange()
        for n in app.recorder.select_notifications(None, 10**6):
            recomputed.append(leaf_of(n))
        assert recomputed.size == read_side.ledger.size() == head
        assert resumed_root == recomputed.root()
