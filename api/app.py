"""create_app(settings): one Tracker and one read side per process, built in the lifespan."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from api import errors, web
from api.appender import Appender
from api.body import BodyGuard
from api.deps import KeyCache, reject_nul
from api.metrics import Metrics, RequestMiddleware
from api.routes import audit, dashboard, deadlines, events, health, ingest, ledger, migrations
from api.schemas import NO_NUL
from api.settings import Settings
from domain.application import Tracker
from projections import ReadSide, startup_lock


def create_app(
    settings: Settings | None = None,
    *,
    env: dict[str, str] | None = None,
    on_start: Any = None,
) -> FastAPI:
    """The API. `env` overrides the eventsourcing environment built from `settings`;
    `on_start(tracker)` runs once the tracker exists (serve uses it to load the demo)."""
    settings = settings or Settings()
    env = env if env is not None else settings.eventsourcing_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        heads = settings.head_policy()
        app.state.heads = heads
        # Several processes may start on one PostgreSQL schema at once: build in turn.
        with startup_lock(env, Tracker.name):
            tracker = Tracker(env=env)
            try:
                read_side = ReadSide(tracker, env, heads=heads)
            except BaseException:
                tracker.close()
                raise
        tracker.on_saved.append(metrics.on_saved)
        # One post per transaction when group commit is off (the tracker's cap of 1 event).
        app.state.appender = Appender(
            tracker,
            max_batch=tracker.commits.max_events,
            deadline=settings.append_deadline_seconds,
        )
        metrics.watch_commits(tracker.commits.stats, app.state.appender)
        app.state.tracker = tracker
        app.state.read_side = read_side
        try:
            if on_start is not None:
                on_start(tracker)
            if settings.run_projections:
                read_side.start()  # active, or a standby if another process's projector is
            yield
        finally:
            # Records what is queued (off the event loop: it waits for the writer thread).
            await run_in_threadpool(app.state.appender.close)
            read_side.close()  # stops the projector if running, closes the views' pool
            tracker.close()

    app = FastAPI(
        title="CSP migration tracker",
        version=importlib.metadata.version("csp-tracker"),
        description="Customer migrations into the Microsoft CSP program: an event-sourced "
        "record of each step, its risks, and an audit trail. Authenticate with "
        "`Authorization: Bearer <key>` (`csp-tracker keys create`).",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul)],
        # Operation ids are the route functions' names (`record_event`, `list_migrations`),
        # so generated clients read well; they are unique (tests/api/test_openapi.py).
        generate_unique_id_function=lambda route: route.name,
        # /docs is served from vendored files (api/web/docs.py), not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Parameters as the server reads them (_tidy_parameters).
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:  # the first call: FastAPI builds the schema and keeps it
            schema = original_openapi()
            _tidy_parameters(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.keys = KeyCache()
    app.state.read_side = None
    app.state.heads = None
    errors.register(app, error_page=web.error_page)
    for module in (migrations, events, audit, ledger, ingest, dashboard, deadlines, health):
        app.include_router(module.router)
    web.install(app, settings.session_key)
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app


def _tidy_parameters(schema: dict[str, Any]) -> None:
    """Parameters as the server reads them.

    - An optional parameter is `T | None` in Python, which FastAPI writes as
      `anyOf: [T, {"type": "null"}]`; but a query string or header cannot say null, only be left
      out. The null branch is dropped, so that the schema (and generated clients) say just `T`.
    - Every query parameter is refused with a NUL in it (`reject_nul`): a string one without a
      pattern of its own gets `NO_NUL` as its pattern."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                param_schema = parameter.get("schema", {})
                branches = param_schema.get("anyOf")
                kept = [b for b in branches or [] if b != {"type": "null"}]
                if branches and len(kept) < len(branches):
                    del param_schema["anyOf"]
                    if len(kept) == 1:
                        param_schema.update(kept[0])
                    else:
                        param_schema["anyOf"] = kept
                if (
                    parameter.get("in") == "query"
                    and param_schema.get("type") == "string"
                    and not {"pattern", "enum", "const", "format"} & set(param_schema)
                ):
                    param_schema["pattern"] = NO_NUL
