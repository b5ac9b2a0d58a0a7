"""Prometheus metrics of one app: a registry per app, so test apps do not collide."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import Recording
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import new_correlation_id
from domain.group_commit import Stats
from domain.migration import Migration, event_type

log = logging.getLogger("csp_tracker.api")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._commits: _CommitCollector | None = None
        self.requests = Counter(
            "csp_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "csp_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.events = Counter(
            "csp_events_appended_total",
            "Migration events appended, by type",
            ["type"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "csp_projection_lag_events",
            "Events the view has not yet processed",
            ["view"],
            registry=self.registry,
        )
        self.projector_active = Gauge(
            "csp_projector_active",
            "1 while this process's projector is the active one of its schema, else 0",
            registry=self.registry,
        )

    def watch_commits(self, stats: Stats, appender: Any = None) -> None:
        """Report the group committer's figures (domain/group_commit.py), and the appender's
        (api/appender.py), at each scrape (of the tracker started last: an app's lifespan may
        run more than once)."""
        if self._commits is not None:
            self.registry.unregister(self._commits)
        self._commits = _CommitCollector(stats, appender)
        self.registry.register(self._commits)

    def on_saved(self, recordings: list[Recording]) -> None:
        for recording in recordings:
            if isinstance(recording.domain_event, Migration.Event):
                self.events.labels(event_type(recording.domain_event)).inc()

    def observe_lag(self, read_side: Any) -> None:
        if read_side is None:
            return
        try:
            self.projector_active.set(1 if read_side.role() == "active" else 0)
            for view, lag in read_side.lag().items():
                self.lag.labels(view).set(lag["lag"])
        except Exception:  # metrics must not fail a scrape
            log.warning("could not read projection lag", exc_info=True)


class _CommitCollector(Collector):
    def __init__(self, stats: Stats, appender: Any) -> None:
        self.stats = stats
        self.appender = appender

    def collect(self) -> Iterator[Metric]:
        figures = [
            ("csp_store_transactions", "Store transactions that appended events", "transactions"),
            ("csp_store_saves", "Saves committed (several share a transaction)", "saves"),
            ("csp_store_events", "Events committed by this process", "events"),
        ]
        for name, text, attribute in figures:
            yield CounterMetricFamily(name, text, value=getattr(self.stats, attribute))
        if self.appender is None:
            return
        yield CounterMetricFamily(
            "csp_appender_batches", "Batches of single posts recorded", value=self.appender.batches
        )
        yield CounterMetricFamily(
            "csp_appender_posts", "Single posts taken in those batches", value=self.appender.posts
        )
        yield CounterMetricFamily(
            "csp_appender_withdrawn",
            "Single posts taken back before the writer took them (deadline or cancel)",
            value=self.appender.withdrawn,
        )
        yield GaugeMetricFamily(
            "csp_appender_queued", "Single posts waiting for the writer", value=self.appender.queued
        )


class RequestMiddleware:
    """Correlation id in and out, and request metrics labelled by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
        correlation_id = new_correlation_id(incoming)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", correlation_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, label, str(status)).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - started)
