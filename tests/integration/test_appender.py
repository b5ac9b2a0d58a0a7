"""The appender (api/appender.py) on a real store (SQLite and PostgreSQL): single-event posts
queued while its writer thread is busy are recorded together, in one transaction, and each
post still gets the answer its own single post would get.

Each spec holds the group committer's turn, so that the writer thread's first batch waits in
its save while the other posts queue behind it: the grouping is certain, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from pydantic import ValidationError

from api import appender as appender_module
from api.appender import Appender, Post, _Queued
from api.deps import Credentials, KeyCache
from api.errors import ApiError
from api.idempotent import Answer
from api.settings import Settings
from domain import idempotency
from domain.access import issue_key
from domain.application import Tracker
from domain.errors import Conflict, NotFound, VersionConflict
from tests.integration.test_group_commit import opened


@pytest.fixture
def app(tracker: Tracker) -> Tracker:
    """Two partners: posts of one may not touch the other's migrations."""
    for partner_id, name in [("fabrikam", "Fabrikam CSP"), ("northwind", "Northwind")]:
        tracker.register_partner(partner_id, name, "europe")
    return tracker


@pytest.fixture
def appender(app: Tracker) -> Iterator[Appender]:
    appender = Appender(app)
    yield appender
    appender.close()


class Keys:
    def __init__(self, app: Tracker) -> None:
        self.app, self.cache = app, KeyCache()
        self.tokens = {
            "admin": issue_key(app, "admin", "account_admin", "fabrikam").token,
            "auditor": issue_key(app, "auditor", "auditor", None).token,
            "northwind": issue_key(app, "nw-admin", "account_admin", "northwind").token,
        }

    def post(
        self,
        migration_id: UUID,
        text: str = "note",
        who: str = "admin",
        expected: int | None = None,
        key: str | None = None,
    ) -> Post:
        return Post(
            Credentials(self.cache, self.app, self.tokens[who]),
            migration_id,
            {"type": "note_added", "text": text},
            "corr-1",
            None if expected is None else str(expected),
            key,
            False,
        )


def run_apart(main: Any) -> Any:
    """asyncio.run(main()) in a thread of its own (the suite's browser tests leave a loop
    running in the main thread)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(main())))
    thread.start()
    thread.join(timeout=30)
    return out[0]


def send(appender: Appender, posts: list[Post]) -> list[Answer | BaseException]:
    """Each post's answer or refusal, all posted at once (from an event loop of their own)."""

    async def main() -> list[Any]:
        return await asyncio.gather(*(appender.append(p) for p in posts), return_exceptions=True)

    answers: list[Any] = run_apart(main)
    return answers


@contextmanager
def behind_a_busy_writer(
    app: Tracker, appender: Appender, first: Post, queued: int
) -> Iterator[list[Any]]:
    """The writer thread busy saving `first` (the committer's turn held) until `queued` more
    posts wait in the appender's queue; the answers of `first` and then of the others, once
    the block's posts are sent (from another thread) and answered."""
    answers: list[Any] = []
    with app.commits.turn():
        first_sent = threading.Thread(target=lambda: answers.extend(send(appender, [first])))
        first_sent.start()
        _until(lambda: app.commits.queued == 1)  # the writer's first batch waits for the turn
        yield answers
        _until(lambda: appender.queued == queued)
    first_sent.join(timeout=30)


def _until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_posts_queued_meanwhile_are_recorded_in_one_transaction(app, appender, monkeypatch):
    # Given the writer busy with a first post, when 8 posts to 8 migrations queue meanwhile,
    # then they are recorded in one transaction, each with its own answer, handed back to
    # their event loop in one call.
    settled: list[int] = []
    real_settle = appender_module._settle

    def counting(answers: list[Any]) -> None:
        settled.append(len(answers))
        real_settle(answers)

    monkeypatch.setattr(appender_module, "_settle", counting)
    keys, ids = Keys(app), opened(app, 9)
    others: list[Any] = []
    before = app.commits.stats.transactions
    with behind_a_busy_writer(app, appender, keys.post(ids[0]), 8) as first:
        sending = threading.Thread(
            target=lambda: others.extend(send(appender, [keys.post(m) for m in ids[1:]]))
        )
        sending.start()
    sending.join(timeout=30)
    assert [a.status for a in first + others] == [201] * 9
    assert [a.body["id"] for a in others] == [str(m) for m in ids[1:]]
    assert all(a.body["version"] == a.body["state"]["version"] == 2 for a in others)
    assert app.commits.stats.transactions - before == 2  # the first post's, then the 8's
    assert settled == [1, 8]
    assert all(app.get(m).version == 2 for m in ids)


def test_a_refused_post_is_that_posts_answer_alone(app, appender):
    # Given a batch of four posts, when one is from a read-only key and one names another
    # partner's migration, then those two are refused and the other two are recorded.
    keys, ids = Keys(app), opened(app, 3)
    posts = [
        keys.post(ids[1]),
        keys.post(ids[1], who="auditor"),
        keys.post(ids[2], who="northwind"),
        keys.post(ids[2]),
    ]
    answers: list[Any] = []
    with behind_a_busy_writer(app, appender, keys.post(ids[0]), 4):
        sending = threading.Thread(target=lambda: answers.extend(send(appender, posts)))
        sending.start()
    sending.join(timeout=30)
    assert isinstance(answers[0], Answer) and answers[0].status == 201
    assert isinstance(answers[1], ApiError) and answers[1].code == "read_only"
    assert isinstance(answers[2], NotFound) and answers[2].code == "migration_not_found"
    assert isinstance(answers[3], Answer) and answers[3].body["version"] == 2
    assert [app.get(m).version for m in ids] == [2, 2, 2]


def test_if_match_sees_the_posts_before_it_on_its_migration(app, appender):
    # Given two posts to one migration at version 1, both with If-Match 1, queued together,
    # then the first is recorded and the second refused (412), as if posted one after another.
    keys, ids = Keys(app), opened(app, 2)
    answers: list[Any] = []
    posts = [keys.post(ids[1], "a", expected=1), keys.post(ids[1], "b", expected=1)]
    with behind_a_busy_writer(app, appender, keys.post(ids[0]), 2):
        sending = threading.Thread(target=lambda: answers.extend(send(appender, posts)))
        sending.start()
    sending.join(timeout=30)
    assert isinstance(answers[0], Answer) and answers[0].body["version"] == 2
    assert isinstance(answers[1], VersionConflict)
    assert answers[1].details == {"expected": 1, "actual": 2}
    assert app.get(ids[1]).version == 2


def test_a_retry_queued_with_its_first_try_is_recorded_once(app, appender):
    # Given the same post twice with one Idempotency-Key, queued together, then one is
    # recorded and the other answered with its answer, replayed.
    keys, ids = Keys(app), opened(app, 2)
    answers: list[Any] = []
    posts = [keys.post(ids[1], key="k-1"), keys.post(ids[1], key="k-1")]
    with behind_a_busy_writer(app, appender, keys.post(ids[0]), 2):
        sending = threading.Thread(target=lambda: answers.extend(send(appender, posts)))
        sending.start()
    sending.join(timeout=30)
    assert [a.status for a in answers] == [201, 201]
    assert sorted(a.replayed for a in answers) == [False, True]
    assert answers[0].body == answers[1].body
    assert app.get(ids[1]).version == 2


def test_a_store_failure_is_the_answer_of_every_post_of_the_batch(app, appender, monkeypatch):
    keys, ids = Keys(app), opened(app, 3)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("the store went away")

    monkeypatch.setattr(app, "execute_each", failing)
    answers = send(appender, [keys.post(ids[1]), keys.post(ids[2])])
    assert all(isinstance(a, OperationalError) for a in answers)
    assert [app.get(m).version for m in ids] == [1, 1, 1]


def test_closing_records_what_is_queued_then_refuses_more(app, appender):
    keys, ids = Keys(app), opened(app, 3)
    answers: list[Any] = []
    with behind_a_busy_writer(app, appender, keys.post(ids[0]), 2):
        sending = threading.Thread(
            target=lambda: answers.extend(send(appender, [keys.post(m) for m in ids[1:]]))
        )
        sending.start()
        closing = threading.Thread(target=appender.close)
        _until(lambda: appender.queued == 2)
        closing.start()
    closing.join(timeout=30)
    sending.join(timeout=30)
    assert [a.status for a in answers] == [201, 201]
    late = send(appender, [keys.post(ids[1])])
    assert isinstance(late[0], ApiError) and late[0].code == "shutting_down"


def test_with_group_commit_off_each_post_has_a_transaction_of_its_own(app):
    # Given the group commit cap at 1 (off), when 3 posts queue behind a first, then each is
    # recorded in a transaction of its own.
    appender = Appender(app, max_batch=1)
    try:
        keys, ids = Keys(app), opened(app, 4)
        answers: list[Any] = []
        before = app.commits.stats.transactions
        with behind_a_busy_writer(app, appender, keys.post(ids[0]), 3):
            sending = threading.Thread(
                target=lambda: answers.extend(send(appender, [keys.post(m) for m in ids[1:]]))
            )
            sending.start()
        sending.join(timeout=30)
        assert [a.status for a in answers] == [201] * 3
        assert app.commits.stats.transactions - before == 4
    finally:
        appender.close()


def test_a_post_whose_event_loop_closed_does_not_stop_the_writer(app, appender):
    # Given a post queued from an event loop that closed before its answer came (a client
    # gone with its loop), when the writer records it, then it goes on to answer the next.
    keys, ids = Keys(app), opened(app, 2)
    loop = asyncio.new_event_loop()
    orphan: asyncio.Future[Answer] = loop.create_future()
    loop.close()
    with appender._ready:
        appender._queue.append(_Queued(keys.post(ids[0]), orphan, loop))
        appender._ready.notify()
    answers = send(appender, [keys.post(ids[1])])
    assert [a.status for a in answers] == [201]
    assert [app.get(m).version for m in ids] == [2, 2]


# -- Adversarial specs (a review of the appender): each drives one batch through
# `Appender._record`, the writer thread's batch function, so that what shares a batch is certain.


def _with_body(post: Post, body: dict[str, Any]) -> Post:
    return dataclasses.replace(post, body=body)


# -- 1. a stored post answered 503 ---------------------------------------------------------------
def test_a_failed_replay_after_the_commit_is_not_the_answer_of_posts_that_were_stored(
    app, appender, monkeypatch
):
    # Given a batch of a plain post (stored) and a keyed post that the domain refuses (404),
    # when the store fails as once_each looks for a concurrent retry of the refused post's key
    # (after the batch committed), then the stored post is still answered 201: it was stored.
    keys, ids = Keys(app), opened(app, 2)
    posts = [keys.post(ids[1]), keys.post(ids[0], who="northwind", key="k-refused")]
    real, calls = idempotency.find, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) >= 2:  # the replay after the commit
            raise OperationalError("the store went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(idempotency, "find", flaky)
    outcomes = appender._record(posts)
    assert app.get(ids[1]).version == 2  # the first post WAS stored ...
    assert isinstance(outcomes[0], Answer), outcomes[0]  # ... and answered 201, not 503


# -- 2. an outage paid once per post, serially ------------------------------------------------
def test_a_store_outage_is_paid_once_per_batch_not_once_per_post(app, appender, monkeypatch):
    # Given the store down (each read failing only after the library's retries: >= 1.8 s on
    # PostgreSQL, 10 attempts 0.2 s apart; here 50 ms), when 20 posts with one key are in a
    # batch, then the batch does not look the key up 20 times one after another.
    keys, ids = Keys(app), opened(app, 2)
    calls: list[int] = []

    def down() -> Any:
        calls.append(1)
        time.sleep(0.05)
        raise OperationalError("the store went away")

    monkeypatch.setattr(app.recorder, "max_notification_id", down)
    started = time.monotonic()
    outcomes = appender._record([keys.post(ids[1]) for _ in range(20)])
    took = time.monotonic() - started
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert len(calls) <= 2, f"{len(calls)} lookups, {took:.2f} s for one batch"


# -- 3. two tries of one key in a batch de-batch it ------------------------------------------------
def test_two_tries_of_one_key_in_a_batch_do_not_send_the_whole_batch_one_by_one(app, appender):
    keys, ids = Keys(app), opened(app, 9)
    posts = [keys.post(m) for m in ids[:8]] + [
        keys.post(ids[8], key="k-dup"),
        keys.post(ids[8], key="k-dup"),
    ]
    before = app.commits.stats.transactions
    outcomes = appender._record(posts)
    assert [o.status for o in outcomes] == [201] * 10
    assert sorted(o.replayed for o in outcomes[8:]) == [False, True]
    assert app.get(ids[8]).version == 2
    took = app.commits.stats.transactions - before
    assert took <= 2, f"{took} transactions for one batch of 10 posts"


# -- 4. tenant claims inside one batch (sequential semantics expected) ---------------------
def test_one_tenant_guid_named_by_two_migrations_in_one_batch(app, appender):
    keys, ids = Keys(app), opened(app, 3)
    guid = str(uuid.uuid4())
    named = {"type": "tenant_identified", "tenant_guid": guid}
    posts = [
        keys.post(ids[0]),
        _with_body(keys.post(ids[1]), named),
        _with_body(keys.post(ids[2]), named),
        keys.post(ids[2], text="after"),
    ]
    outcomes = appender._record(posts)
    assert isinstance(outcomes[1], Answer) and outcomes[1].body["state"]["tenant_guid"] == guid
    assert isinstance(outcomes[2], Conflict) and outcomes[2].code == "migration_open"
    assert isinstance(outcomes[3], Answer) and outcomes[3].body["version"] == 2
    assert app.get(ids[2]).state.tenant_guid is None
    assert [app.get(m).version for m in ids] == [2, 2, 2]


def test_a_refused_claim_between_two_posts_on_one_migration(app, appender):
    keys, ids = Keys(app), opened(app, 2)
    guid = str(uuid.uuid4())
    named = {"type": "tenant_identified", "tenant_guid": guid}
    assert isinstance(appender._record([_with_body(keys.post(ids[0]), named)])[0], Answer)
    posts = [
        keys.post(ids[1], text="one"),
        _with_body(keys.post(ids[1]), named),  # refused: ids[0] holds the guid
        keys.post(ids[1], text="two"),
    ]
    outcomes = appender._record(posts)
    assert isinstance(outcomes[0], Answer) and outcomes[0].body["version"] == 2
    assert isinstance(outcomes[1], Conflict)
    assert isinstance(outcomes[2], Answer) and outcomes[2].body["version"] == 3
    history = [type(e).__name__ for e in app.history(ids[1])]
    assert history.count("TenantIdentified") == 0 and app.get(ids[1]).version == 3


# -- 5. the PostgreSQL lost acknowledgement (the save landed, then an IntegrityError) --------
def test_a_batch_whose_save_landed_although_it_reported_a_collision(app, appender, monkeypatch):
    keys, ids = Keys(app), opened(app, 3)
    real, tripped = app.save, []

    def lost_ack(*aggregates: Any, **kwargs: Any) -> Any:
        result = real(*aggregates, **kwargs)
        if not tripped:
            tripped.append(1)
            raise IntegrityError("the retry collided with its own committed insert")
        return result

    monkeypatch.setattr(app, "save", lost_ack)
    outcomes = appender._record(
        [keys.post(ids[1], key="k-a"), keys.post(ids[2]), keys.post(ids[1], text="2")]
    )
    assert [o.status for o in outcomes] == [201] * 3
    assert [app.get(m).version for m in ids] == [1, 3, 2]
    again = appender._record([keys.post(ids[1], key="k-a")])
    assert again[0].replayed and again[0].body == outcomes[0].body


# -- 1b. the one-by-one fallback: a store failure after some items committed alone ----------
def test_a_store_failure_in_the_one_by_one_fallback_is_not_the_answer_of_items_it_stored(
    app, appender, monkeypatch
):
    # Given a batch whose combined save collides (two tries of one key), so that its items are
    # then recorded one by one, each in its own transaction: when the store fails at the
    # second, then the first (committed alone) is answered 201, not 503.
    keys, ids = Keys(app), opened(app, 3)
    posts = [keys.post(ids[1]), keys.post(ids[2], key="k-dup"), keys.post(ids[2], key="k-dup")]
    real, calls = app.execute, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("the store went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(app, "execute", flaky)
    outcomes = appender._record(posts)
    assert app.get(ids[1]).version == 2  # stored, alone, before the failure ...
    assert isinstance(outcomes[0], Answer), outcomes[0]  # ... and answered 201, not 503


def test_one_key_for_two_different_posts_in_one_batch(app, appender):
    keys, ids = Keys(app), opened(app, 3)
    outcomes = appender._record(
        [keys.post(ids[1], key="k"), keys.post(ids[2], key="k"), keys.post(ids[0])]
    )
    assert isinstance(outcomes[0], Answer) and outcomes[0].status == 201
    assert isinstance(outcomes[1], ApiError) and outcomes[1].code == "idempotency_key_reused"
    assert isinstance(outcomes[2], Answer)
    assert [app.get(m).version for m in ids] == [2, 2, 1]


class TestAPostPastItsDeadline:
    """Given the writer thread held up (the committer's turn held, so its batch waits in its
    save), when a queued post's deadline passes, then it is refused (503 append_timeout) and
    never recorded; a post the writer has already taken gets its outcome. The deadline is
    lowered only once the writer holds its post, so a slow machine cannot withdraw that one."""

    def test_a_queued_post_is_refused_and_never_recorded(self, app, appender):
        keys, ids = Keys(app), opened(app, 2)
        late: list[Any] = []
        with behind_a_busy_writer(app, appender, keys.post(ids[0]), 0) as first:
            appender.deadline = 0.3
            sending = threading.Thread(
                target=lambda: late.extend(send(appender, [keys.post(ids[1])]))
            )
            sending.start()
            sending.join(timeout=10)  # answered while the writer is still held up
            assert not sending.is_alive()
            assert isinstance(late[0], ApiError)
            assert (late[0].status, late[0].code) == (503, "append_timeout")
            assert appender.queued == 0 and appender.withdrawn == 1
        # (0 left queued when the block ends.) The writer's own post, held past the deadline
        # too, had been taken: it is recorded.
        assert [a.status for a in first] == [201]
        assert app.get(ids[0]).version == 2
        appender.close()  # nothing left to record
        assert app.get(ids[1]).version == 1  # the refused post was not

    def test_a_request_cancelled_while_queued_takes_its_post_back(self, app, appender):
        keys, ids = Keys(app), opened(app, 2)
        outcome: list[Any] = []

        async def cancelled() -> None:
            task = asyncio.ensure_future(appender.append(keys.post(ids[1])))
            while appender.queued != 1:
                await asyncio.sleep(0.005)
            task.cancel()
            outcome.extend(await asyncio.gather(task, return_exceptions=True))

        with behind_a_busy_writer(app, appender, keys.post(ids[0]), 0):
            run_apart(cancelled)
            assert appender.queued == 0 and appender.withdrawn == 1
        assert isinstance(outcome[0], asyncio.CancelledError)
        appender.close()
        assert app.get(ids[0]).version == 2
        assert app.get(ids[1]).version == 1

    def test_posts_answered_in_time_leave_no_timer_behind(self, app, appender):
        keys, ids = Keys(app), opened(app, 3)

        async def main() -> tuple[list[Any], int]:
            answers = await asyncio.gather(*(appender.append(keys.post(m)) for m in ids))
            loop = asyncio.get_running_loop()
            live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
            return answers, len(live)

        answers, live = run_apart(main)
        assert [a.status for a in answers] == [201] * 3
        assert live == 0
        assert appender.withdrawn == 0

    @pytest.mark.parametrize("deadline", [0, -1, float("nan")])
    def test_the_deadline_must_be_positive(self, app, deadline):
        with pytest.raises(ValueError, match="deadline"):
            Appender(app, deadline=deadline)
        with pytest.raises(ValidationError, match="append_deadline_seconds"):
            Settings(append_deadline_seconds=deadline)
        assert Settings().append_deadline_seconds == appender_module.DEADLINE
