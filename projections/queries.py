"""Read queries over the views: dashboard lists, audit pages, export, verify, summary.

Migrations come back as `domain.view.describe(...)` of the stored state at the caller's `now`,
so time-dependent risk flags are evaluated at read time, never frozen at projection time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.rules import HORIZONS_DAYS, LAPSE_WHEN_PASSED, deadlines, timed_bounds
from domain.view import describe
from domain.vocabulary import Stage
from projections import rows
from projections.verify import verify
from projections.views import ViewStore

PAGE = 1000


def timed_risk_conditions(now: datetime) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """`rules.timed_bounds` as SQL over the stored dates: risk -> (condition, parameters)."""
    out = {}
    for risk, (column, low, high) in timed_bounds(now.date()).items():
        parts, params = [f"{column} IS NOT NULL"], []
        if low is not None:
            parts.append(f"{column} >= ?")
            params.append(low.isoformat())
        if high is not None:
            parts.append(f"{column} <= ?")
            params.append(high.isoformat())
        out[risk] = (" AND ".join(parts), tuple(params))
    return out


class Queries:
    def __init__(self, view: ViewStore, app: Any) -> None:
        self.view = view
        self.app = app

    # -- current state ------------------------------------------------------------------------
    def get_migration(self, migration_id: str, *, now: datetime) -> dict | None:
        found = self.view.fetch(
            "SELECT id, version, state FROM {migrations} WHERE id = ?", (str(migration_id),)
        )
        if not found:
            return None
        r = found[0]
        return describe(r["id"], r["version"], rows.load_state(r["state"]), now)

    def list_migrations(
        self,
        *,
        now: datetime,
        partner_id: str | None = None,
        stage: str | None = None,
        risk: str | None = None,
        tenant_id: str | None = None,
        term_end_before: date | None = None,
        text: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """One page, in id order; the cursor is the last id of the page (None: no more).
        `text`: the customer name, tenant domain or id contains it, in any case (`\\`, `%`
        and `_` in it are ignored)."""
        where, params = self._migrations_where(
            now,
            partner_id=partner_id,
            stage=stage,
            risk=risk,
            tenant_id=tenant_id,
            term_end_before=term_end_before,
        )
        if cursor:
            where.append("id > ?")
            params.append(cursor)
        needle = rows.search_needle(text) if text else ""
        with self.view.read() as c:  # one snapshot, for the search's probe and the page
            if needle:  # (a text of only `\\`, `%` and `_` matches every migration, as it did)
                condition, extra = self.view.text_condition(c, needle, limit)
                where.append(condition)
                params += extra
            sql = "SELECT id, version, state FROM {migrations}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            c.execute(self.view.sql(sql + " ORDER BY id LIMIT ?"), [*params, limit])
            found = list(c.fetchall())
        items = [describe(r["id"], r["version"], rows.load_state(r["state"]), now) for r in found]
        next_cursor = found[-1]["id"] if len(found) == limit and found else None
        return items, next_cursor

    def _migrations_where(
        self,
        now: datetime,
        *,
        partner_id: str | None,
        stage: str | None,
        risk: str | None,
        tenant_id: str | None,
        term_end_before: date | None,
    ) -> tuple[list[str], list[object]]:
        """The filters of the migrations list (but the text) as SQL conditions, parameters."""
        where: list[str] = []
        params: list[object] = []
        if partner_id is not None:
            where.append("partner_id = ?")
            params.append(partner_id)
        if stage is not None:
            where.append("stage = ?")
            params.append(stage)
        if tenant_id is not None:
            where.append("tenant_id = ?")
            params.append(tenant_id.lower())
        if term_end_before is not None:
            where.append("next_term_end < ?")
            params.append(term_end_before.isoformat())
        if risk is not None:
            timed = timed_risk_conditions(now)
            if risk in timed:
                condition, extra = timed[risk]
                where.append(f"({condition})")
                params += extra
            else:
                where.append(
                    "EXISTS (SELECT 1 FROM {migration_risks} r "
                    "WHERE r.migration_id = {migrations}.id AND r.risk = ?)"
                )
                params.append(risk)
        return where, params

    # -- audit --------------------------------------------------------------------------------
    def audit(
        self,
        *,
        after: int | None = None,
        order: str = "asc",
        limit: int = 100,
        **filters: Any,
    ) -> tuple[list[dict], int | None]:
        """One page of audit rows in position order (`order` "asc" or "desc"); `after` is the
        cursor returned by the previous page. recorded_from is inclusive, recorded_to exclusive;
        a time without a zone is read as UTC."""
        if order not in ("asc", "desc"):
            raise ValueError("order must be 'asc' or 'desc'")
        where, params = self._audit_where(**filters)  # the filters of `_audit_where`
        if after is not None:
            where.append("position > ?" if order == "asc" else "position < ?")
            params.append(after)
        sql = "SELECT * FROM {audit}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY position {order.upper()} LIMIT ?"
        params.append(limit)
        found = [rows.audit_dict(r) for r in self.view.fetch(sql, params)]
        next_cursor = found[-1]["position"] if len(found) == limit and found else None
        return found, next_cursor

    def _audit_where(
        self,
        *,
        partner_id: str | None = None,
        tenant_id: str | None = None,
        migration_id: str | None = None,
        principal: str | None = None,
        role: str | None = None,
        event_type: str | None = None,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
    ) -> tuple[list[str], list[object]]:
        """The audit filters as SQL conditions and their parameters."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("partner_id", partner_id),
            ("tenant_id", None if tenant_id is None else tenant_id.lower()),
            ("migration_id", None if migration_id is None else str(migration_id)),
            ("principal", principal),
            ("role", role),
            ("event_type", event_type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        # A time without a zone is UTC (as in the API), never the machine's local time.
        if recorded_from is not None:
            where.append("recorded_at >= ?")
            params.append(rows.iso(_utc(recorded_from)))
        if recorded_to is not None:
            where.append("recorded_at < ?")
            params.append(rows.iso(_utc(recorded_to)))
        return where, params

    def count_audit(self, **audit_filters: Any) -> int:
        """How many audit rows match the filters (for progress reports)."""
        where, params = self._audit_where(**audit_filters)
        sql = "SELECT COUNT(*) AS n FROM {audit}" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        return int(self.view.fetch(sql, params)[0]["n"])

    def export(self, fmt: str, **audit_filters: Any) -> Iterator[str]:
        """Every audit row matching the filters, as CSV (header first) or JSON Lines; pages of
        1000 by position, so memory stays flat however many rows there are. CSV cells that a
        spreadsheet would run as formulas are quoted (`csv_cell`); JSON Lines are unchanged."""
        if fmt not in ("csv", "jsonl"):
            raise ValueError("fmt must be 'csv' or 'jsonl'")
        audit_filters.pop("limit", None)
        after = audit_filters.pop("after", None)
        if fmt == "csv":
            yield _csv_line(rows.AUDIT_COLUMNS)
        while True:
            page, after = self.audit(after=after, limit=PAGE, **audit_filters)
            for row in page:
                if fmt == "csv":
                    yield _csv_line(
                        rows.canonical(row[c]) if c == "payload" else row[c]
                        for c in rows.AUDIT_COLUMNS
                    )
                else:
                    yield rows.canonical(row) + "\n"
            if after is None:
                return

    def verify(self, from_position: int | None = None) -> dict:
        """Recompute the hash chain and compare each row with the event it came from."""
        return verify(self.view, self.app, from_position)

    # -- deadlines ----------------------------------------------------------------------------
    def deadlines(
        self,
        *,
        now: datetime,
        partner_id: str | None = None,
        within_days: int = 90,
        kinds: frozenset[str] | None = None,
        overdue_days: int = 30,
    ) -> list[dict[str, Any]]:
        """Every dated obligation (`rules.deadlines`) of the migrations, soonest first, due
        within `within_days` of today or overdue by at most `overdue_days`."""
        today = now.date()
        first = (today - timedelta(days=overdue_days)).isoformat()
        last = (today + timedelta(days=within_days)).isoformat()
        sql = "SELECT id, partner_id, customer_name, state FROM {migrations}"
        params: tuple[Any, ...] = ()
        if partner_id is not None:
            sql += " WHERE partner_id = ?"
            params = (partner_id,)
        items = []
        for row in self.view.fetch_iter(sql, params):
            for item in deadlines(rows.load_state(row["state"])):
                if not first <= item["date"] <= last:
                    continue
                if item["kind"] in LAPSE_WHEN_PASSED and item["date"] < today.isoformat():
                    continue
                if kinds is not None and item["kind"] not in kinds:
                    continue
                items.append(
                    {
                        **item,
                        "overdue": item["date"] < today.isoformat(),
                        "migration_id": row["id"],
                        "partner_id": row["partner_id"],
                        "customer_name": row["customer_name"],
                    }
                )
        return sorted(items, key=lambda i: (i["date"], i["customer_name"], i["kind"]))

    # -- summary ------------------------------------------------------------------------------
    def summary(self, *, now: datetime, partner_id: str | None = None) -> dict:
        """Per partner and overall: stages, risk flags (timed ones at `now`), licenses,
        originals ending unreplaced within each horizon, credits."""
        only = " WHERE partner_id = ?" if partner_id is not None else ""
        params: tuple[Any, ...] = (partner_id,) if partner_id is not None else ()
        partners: dict[str, dict] = {}

        def of(pid: str) -> dict:
            if pid not in partners:
                partners[pid] = _empty_summary()
            return partners[pid]

        for r in self.view.fetch("SELECT partner_id, metric, value FROM {summary}" + only, params):
            _add_metric(of(r["partner_id"]), r["metric"], Decimal(r["value"]))

        # Time-dependent counts: sums of date buckets over a range of days relative to `now`,
        # so their cost depends on the number of distinct (partner, kind, day), not migrations.
        today = now.date()
        sums, sum_params = [], []
        timed = timed_bounds(today)
        for risk, (kind, low, high) in timed.items():
            bounds = "".join(
                f" AND day {op} ?" for op, bound in ((">=", low), ("<=", high)) if bound is not None
            )
            sums.append(f"SUM(CASE WHEN kind = ?{bounds} THEN n ELSE 0 END) AS {risk}")
            sum_params += [kind, *(b.isoformat() for b in (low, high) if b is not None)]
        for days in HORIZONS_DAYS:
            sums.append(
                f"SUM(CASE WHEN kind = ? AND day >= ? AND day <= ? THEN n ELSE 0 END) AS d{days}"
            )
            sum_params += [
                rows.ORIGINAL_TERM_END,
                today.isoformat(),
                (today + timedelta(days=days)).isoformat(),
            ]
        for r in self.view.fetch(
            f"SELECT partner_id, {', '.join(sums)} FROM {{summary_dates}}{only} "
            "GROUP BY partner_id",
            (*sum_params, *params),
        ):
            for risk in timed:
                if r[risk]:
                    of(r["partner_id"])["risks"][str(risk)] = int(r[risk])
            for days in HORIZONS_DAYS:
                if r[f"d{days}"]:
                    of(r["partner_id"])["ending_unreplaced"][str(days)] = int(r[f"d{days}"])

        overall = _empty_summary()
        for p in partners.values():
            _merge(overall, p)
        return {
            "overall": _finish(overall),
            "partners": {pid: _finish(p) for pid, p in sorted(partners.items())},
        }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _empty_summary() -> dict:
    return {
        "migrations": 0,
        "stages": {s.value: 0 for s in Stage},
        "risks": {},
        "licenses": {"original": 0, "provisioned": 0},
        "ending_unreplaced": {str(d): 0 for d in HORIZONS_DAYS},
        "credits": {"requested": 0, "granted": 0, "denied": 0, "granted_amount": {}},
    }


def _add_metric(s: dict, metric: str, value: Decimal) -> None:
    kind, _, key = metric.partition(":")
    if kind == "migrations":
        s["migrations"] += int(value)
    elif kind == "stage":
        s["stages"][key] = s["stages"].get(key, 0) + int(value)
    elif kind == "risk":
        s["risks"][key] = s["risks"].get(key, 0) + int(value)
    elif kind == "licenses":
        s["licenses"][key] += int(value)
    elif kind == "credits":
        s["credits"][key] += int(value)
    elif kind == "granted_amount":
        amounts = s["credits"]["granted_amount"]
        amounts[key] = amounts.get(key, Decimal(0)) + value


def _merge(into: dict, s: dict) -> None:
    into["migrations"] += s["migrations"]
    for group in ("stages", "risks", "ending_unreplaced"):
        for k, n in s[group].items():
            into[group][k] = into[group].get(k, 0) + n
    for k in ("original", "provisioned"):
        into["licenses"][k] += s["licenses"][k]
    for k in ("requested", "granted", "denied"):
        into["credits"][k] += s["credits"][k]
    amounts = into["credits"]["granted_amount"]
    for cur, amount in s["credits"]["granted_amount"].items():
        amounts[cur] = amounts.get(cur, Decimal(0)) + amount


def _finish(s: dict) -> dict:
    s["risks"] = dict(sorted(s["risks"].items()))
    s["credits"]["granted_amount"] = {
        cur: rows.decimal_text(Decimal(amount))
        for cur, amount in sorted(s["credits"]["granted_amount"].items())
    }
    return s


# OWASP's rule against CSV (formula) injection: a cell starting with one of these is run as a
# formula by spreadsheets; a single quote in front makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One CSV cell: None as empty, text that a spreadsheet would read as a formula quoted with
    a leading `'` (numbers are left alone: the exports hold no negative ones)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_line(values: Any) -> str:
    cells = [csv_cell(v) for v in values]
    # The writer quotes cells holding "\n" (the line terminator) but not a bare "\r", which
    # spreadsheets read as a line break: its row would be split, and the text after the "\r"
    # would start a cell of its own (a formula, maybe). Quote every cell of such a row.
    carriage = any(isinstance(c, str) and "\r" in c for c in cells)
    buffer = io.StringIO()
    csv.writer(
        buffer, lineterminator="\n", quoting=csv.QUOTE_ALL if carriage else csv.QUOTE_MINIMAL
    ).writerow(cells)
    return buffer.getvalue()
