"""Group commit's gathering (GroupCommit._gather): a leader waits, at most `linger`, for the
writers of the last group to come back, so that concurrent writers share one transaction
instead of settling into two halves that take turns.

A recorder that holds each insert until the spec lets it go makes the order of events certain.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import AggregateRecorder, StoredEvent

from domain.group_commit import GAP, LINGER, GroupCommit


class GatedRecorder(AggregateRecorder):
    """Records each insert's events; the first `held` inserts each wait until released."""

    def __init__(self, held: int) -> None:
        self.inserts: list[list[str]] = []
        self.gates = [threading.Event() for _ in range(held)]
        self.started = 0  # inserts begun
        self.next_id = 0

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        n, self.started = self.started, self.started + 1
        if n < len(self.gates):
            self.gates[n].wait()
        self.inserts.append([e.topic for e in stored_events])
        ids = list(range(self.next_id + 1, self.next_id + 1 + len(stored_events)))
        self.next_id += len(stored_events)
        return ids

    def select_events(self, *args: Any, **kwargs: Any) -> list[StoredEvent]:
        return []


def event(name: str) -> StoredEvent:
    return StoredEvent(originator_id=uuid4(), originator_version=1, topic=name, state=b"{}")


def save(commits: GroupCommit, name: str) -> threading.Thread:
    thread = threading.Thread(target=commits.insert_events, args=([event(name)],))
    thread.start()
    return thread


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def queue(commits: GroupCommit, names: str) -> list[threading.Thread]:
    queued = commits.queued
    threads = [save(commits, name) for name in names]
    wait_until(lambda: commits.queued == queued + len(names))
    return threads


def given_a_group_of_four_then_one_new_writer_leading(
    linger: float, max_events: int = 1000
) -> tuple[GatedRecorder, GroupCommit]:
    """Given: "x" commits alone while "a", "b", "c" and "d" queue; they commit together while
    "e" queues; then they are done and "e" leads the next group, its writers being the four
    that just committed and itself."""
    recorder = GatedRecorder(held=2)
    commits = GroupCommit(recorder, max_events=max_events, linger=linger)
    x = save(commits, "x")
    wait_until(lambda: recorder.started == 1)
    group = queue(commits, "abcd")
    recorder.gates[0].set()
    x.join()
    wait_until(lambda: recorder.started == 2)
    queue(commits, "e")
    recorder.gates[1].set()
    for thread in group:
        thread.join()
    return recorder, commits


class TestGathering:
    def test_the_leader_waits_for_the_writers_that_come_back_and_commits_all_together(self):
        recorder, commits = given_a_group_of_four_then_one_new_writer_leading(linger=5.0)
        started = time.monotonic()
        for thread in [save(commits, f"{name} again") for name in "abc"]:
            thread.join()
        assert time.monotonic() - started < 1.0  # not the 5 s linger: the group was complete
        assert recorder.inserts == [
            ["x"],
            ["a", "b", "c", "d"],
            ["e", "a again", "b again", "c again"],
        ]

    def test_the_wait_ends_a_gap_after_the_last_arrival_when_nobody_else_comes_back(self):
        # A writer not back within GAP x linger is busy elsewhere: the group goes without it,
        # long before the linger is over.
        started = time.monotonic()
        recorder, _ = given_a_group_of_four_then_one_new_writer_leading(linger=1.0)
        wait_until(lambda: len(recorder.inserts) == 3)
        assert 1.0 * GAP <= time.monotonic() - started < 1.0
        assert recorder.inserts[2] == ["e"]

    def test_each_writer_that_comes_back_extends_the_wait_within_linger(self):
        recorder, commits = given_a_group_of_four_then_one_new_writer_leading(linger=1.0)
        time.sleep(0.1)  # within the gap (0.25 s) of "e"
        save(commits, "a again")
        time.sleep(0.2)  # within the gap of "a again", past that of "e"
        save(commits, "b again")
        wait_until(lambda: len(recorder.inserts) == 3)
        assert recorder.inserts[2] == ["e", "a again", "b again"]

    def test_a_writer_that_wants_the_turn_ends_the_wait_at_once(self):
        recorder, commits = given_a_group_of_four_then_one_new_writer_leading(linger=5.0)
        took_turn = threading.Event()

        def projector() -> None:
            with commits.turn():
                took_turn.set()

        started = time.monotonic()
        threading.Thread(target=projector).start()
        wait_until(took_turn.is_set)
        assert time.monotonic() - started < 1.0
        assert recorder.inserts[2] == ["e"]

    def test_a_full_group_does_not_wait(self):
        # A cap of 2 events: "a" and "b" go first, then "c" and "d" are a full group at once,
        # though four writers were busy when the last group was taken.
        started = time.monotonic()
        recorder, _ = given_a_group_of_four_then_one_new_writer_leading(linger=5.0, max_events=2)
        assert time.monotonic() - started < 1.0
        assert recorder.inserts == [["x"], ["a", "b"], ["c", "d"]]


class TestInterrupted:
    def test_a_leader_interrupted_while_it_waits_leaves_the_turn_to_the_next_save(self):
        # As after a group of four, a save leads and waits for the others; Ctrl-C (SIGALRM
        # here) interrupts it. Its save is not stored, and the next save is not left waiting
        # for a leader that is gone.
        recorder = GatedRecorder(held=0)
        commits = GroupCommit(recorder, linger=5.0)
        commits._expected = 4

        def interrupt(*args: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            with pytest.raises(KeyboardInterrupt):
                commits.insert_events([event("interrupted")])
        finally:
            signal.signal(signal.SIGALRM, previous)
        later = save(commits, "later")
        later.join(3)
        assert not later.is_alive()
        assert recorder.inserts == [["later"]]


class TestNoWait:
    def test_a_writer_alone_never_waits(self):
        recorder = GatedRecorder(held=0)
        commits = GroupCommit(recorder, linger=5.0)
        started = time.monotonic()
        for i in range(20):
            commits.insert_events([event(str(i))])
        assert time.monotonic() - started < 1.0
        assert len(recorder.inserts) == 20

    def test_a_linger_of_zero_never_waits(self):
        started = time.monotonic()
        recorder, _ = given_a_group_of_four_then_one_new_writer_leading(linger=0.0)
        wait_until(lambda: len(recorder.inserts) == 3, timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert recorder.inserts[2] == ["e"]


def test_the_setting_reaches_the_tracker(store_env):
    from domain.application import Tracker

    setting = {"GROUP_COMMIT_LINGER_MS": "2.5", "CSP_TRACKER_GROUP_COMMIT_LINGER_MS": "2.5"}
    tracker = Tracker(env={**store_env, **setting})
    try:
        assert tracker.commits.linger == 0.0025
    finally:
        tracker.close()
    tracker = Tracker(env=store_env)  # the service's settings, as tests and benches use them
    try:
        assert tracker.commits.linger == 0.001  # the setting's default
    finally:
        tracker.close()
    unset = {k: v for k, v in store_env.items() if not k.endswith("GROUP_COMMIT_LINGER_MS")}
    tracker = Tracker(env=unset)
    try:
        assert tracker.commits.linger == LINGER
    finally:
        tracker.close()
    for wrong in ("nan", "-1", "inf"):
        with pytest.raises(ValueError, match="GROUP_COMMIT_LINGER_MS"):
            Tracker(env={**unset, "GROUP_COMMIT_LINGER_MS": wrong})


def test_the_setting_is_refused_outside_0_to_50_ms():
    from pydantic import ValidationError

    from api.settings import Settings

    for wrong in (-1, 50.5):
        with pytest.raises(ValidationError, match="group_commit_linger_ms"):
            Settings(group_commit_linger_ms=wrong)
    assert Settings(group_commit_linger_ms=0).eventsourcing_env()["GROUP_COMMIT_LINGER_MS"] == "0.0"
