"""Single-event posts (POST /v1/migrations/{id}/events with one event), decided and saved by
one writer thread in batches.

Each request waits on the event loop, not in a worker thread of its own: the writer thread takes
every post queued since its last batch (up to `max_batch`) and records them with
`Tracker.execute_each`, each item as its own single post would be recorded (in the order they
arrived, an item on a migration seeing the ones before it), all in one transaction; then it
hands each request its own answer with one call into the event loop. A request thus costs no
thread hand-over of its own, and concurrent posts share one commit, which is the point: on one
core, a thread per request spent more in waking threads and passing the GIL between them than
the command itself costs (docs/performance.md, section 1).

Each item keeps the single post's semantics, checked in the same order: the key (401), the
role (403), `If-Match` (the version as the items before it on its migration left it: 412), the
`Idempotency-Key` (a replay, or 422 `idempotency_key_reused`), then the domain. A refused item
is that request's refusal alone; the others go on. Should the combined save collide with
another writer, `execute_each` records the items one by one instead. A store failure (503) is
the answer of every post of the batch not stored before it (`once_each`), and the store down
while the posts are checked is every post's answer at once, not paid post by post.

A post has a deadline (`deadline`, CSP_TRACKER_APPEND_DEADLINE_SECONDS): one still queued when
it passes, because the writer thread is held up (the store slow or unreachable, another
process holding SQLite's writers' lock), is taken out of the queue, never recorded, and refused
with 503 `append_timeout`. Its client then knows it was not stored, instead of giving up on a
post that might still be recorded long after. A post the writer thread has taken gets its
outcome, however long that takes. A request cancelled while its post is queued takes it back
too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from api.deps import Credentials, Principal
from api.errors import STORE_ERRORS, ApiError
from api.idempotent import Answer, Write, event_request_hash, once_each
from api.schemas import expected_version, read_events
from domain.application import Tracker

log = logging.getLogger(__name__)
MAX_BATCH = 100  # posts recorded in one transaction, at most (and at most the group commit cap)
DEADLINE = 10.0  # seconds a post may wait in the queue for the writer thread


@dataclass
class Post:
    """One single-event post, as the route read it from the wire."""

    credentials: Credentials
    migration_id: UUID
    body: Any  # the event as FastAPI validated it (api.schemas.EventsIn)
    correlation_id: str
    if_match: str | None  # read after the role, as a single post reads it
    idempotency_key: str | None
    minimal: bool  # Prefer: return=minimal


@dataclass(eq=False)  # each is itself: taken out of the queue by identity
class _Queued:
    post: Post
    future: asyncio.Future[Answer]
    loop: asyncio.AbstractEventLoop


class Appender:
    def __init__(
        self, tracker: Tracker, max_batch: int = MAX_BATCH, deadline: float = DEADLINE
    ) -> None:
        if not deadline > 0:  # NaN too
            raise ValueError(f"the appender's deadline must be > 0 seconds, not {deadline!r}")
        self.tracker = tracker
        self.max_batch = max(1, min(max_batch, MAX_BATCH))
        self.deadline = deadline
        self._ready = threading.Condition()
        self._queue: list[_Queued] = []
        self._closed = False
        self.batches = 0  # batches the writer thread took, and the posts in them (/metrics)
        self.posts = 0
        self.withdrawn = 0  # posts taken back unrecorded: deadline, or request cancelled
        self._thread = threading.Thread(target=self._run, name="appender", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Posts waiting for the writer thread."""
        with self._ready:
            return len(self._queue)

    async def append(self, post: Post) -> Answer:
        """The post's answer (201, or the replay of a kept one); its refusal raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        queued = _Queued(post, future, loop)
        with self._ready:
            if self._closed:
                raise ApiError(503, "shutting_down", "the server is shutting down; try again")
            self._queue.append(queued)
            self._ready.notify()
        timer = loop.call_later(self.deadline, self._withdraw, queued)
        try:
            return await future
        finally:
            timer.cancel()
            if future.cancelled():  # the request was cancelled: its post is not recorded
                self._take_back(queued)

    def _take_back(self, queued: _Queued) -> bool:
        """Whether the post was still queued, and is no more (else the writer has taken it)."""
        with self._ready:
            try:
                self._queue.remove(queued)
            except ValueError:
                return False
            self.withdrawn += 1
            return True

    def _withdraw(self, queued: _Queued) -> None:
        """At a post's deadline (in its event loop): refused, if the writer has not taken it."""
        if not self._take_back(queued):
            return  # taken by the writer thread: its outcome will come
        if not queued.future.done():
            queued.future.set_exception(
                ApiError(
                    503,
                    "append_timeout",
                    f"not recorded: the post waited {self.deadline:g} s for the store; send it "
                    "again (with the same Idempotency-Key, if it had one)",
                )
            )

    def close(self) -> None:
        """Record what is queued, then stop the writer thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.warning("the appender's writer thread did not finish within 30 s")

    # -- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return  # closed, and nothing left
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.batches += 1
                self.posts += len(batch)
            try:
                outcomes = self._record([q.post for q in batch])
            except BaseException as failure:  # a bug: tell every request, and go on
                log.exception("appender batch failed")
                outcomes = [failure] * len(batch)
            # One call into each event loop per batch (each call wakes that loop up).
            answers: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
            for queued, outcome in zip(batch, outcomes, strict=True):
                answers.setdefault(queued.loop, []).append((queued.future, outcome))
            for loop, settled in answers.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that event loop is closed: nobody waits for the answers
                    log.warning(
                        "%d posts were recorded after their event loop closed", len(settled)
                    )

    def _record(self, posts: list[Post]) -> list[Answer | BaseException]:
        """Each post's answer or refusal, the batch recorded in one transaction."""
        try:
            # One look at the store's head for the whole batch: the keys' and the cached
            # migrations' (domain.repository).
            with self.tracker.repository.caught_up():
                return self._record_caught_up(posts)
        except STORE_ERRORS as failure:  # the store is down: every post's answer, at once
            return [failure] * len(posts)

    def _record_caught_up(self, posts: list[Post]) -> list[Answer | BaseException]:
        outcomes: list[Answer | BaseException | None] = [None] * len(posts)
        checked: list[tuple[int, Write]] = []
        principals: dict[str, Principal | ApiError] = {}  # one key lookup per key per batch
        for index, post in enumerate(posts):
            try:
                checked.append((index, self._check(post, principals)))
            except STORE_ERRORS as failure:  # the store is down: every post's answer, at once
                return [failure] * len(posts)
            except Exception as refusal:  # this post's alone: 401, 403, 422, ...
                outcomes[index] = refusal
        try:
            answers: list[Any] = once_each(self.tracker, [write for _, write in checked])
        except Exception as failure:  # the store's, reading kept answers: none was stored
            answers = [failure] * len(checked)
        for (index, _), answer in zip(checked, answers, strict=True):
            outcomes[index] = answer
        return cast("list[Answer | BaseException]", outcomes)

    def _check(self, post: Post, principals: dict[str, Principal | ApiError]) -> Write:
        """The post's checks, in the single post's order: its key, its body, its role, its
        If-Match."""
        token = post.credentials.token
        found = principals.get(token)
        if found is None:
            try:
                found = principals[token] = post.credentials.principal()
            except ApiError as refusal:
                found = principals[token] = refusal
        if isinstance(found, ApiError):
            raise found
        event = read_events(post.body)
        found.ensure_writer()
        expected = expected_version(post.if_match)
        ctx, command = found.step(post.correlation_id, event)
        key = post.idempotency_key
        wire = None if key is None else event.model_dump(mode="json")
        fingerprint = "" if wire is None else event_request_hash(post.migration_id, wire)
        return Write(
            found, (post.migration_id, ctx, command), expected, key, fingerprint, post.minimal
        )


def _settle(settled: list[tuple[asyncio.Future[Answer], Answer | BaseException]]) -> None:
    for future, outcome in settled:
        if future.done():  # the client went away (the request was cancelled)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
