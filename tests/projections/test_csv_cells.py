"""CSV exports quote cells a spreadsheet would run as formulas (OWASP's rule); JSON Lines don't."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from domain.context import Context
from projections import rows
from projections.queries import Queries, _csv_line, csv_cell
from tests.factories import start

STARTS = ["=", "+", "-", "@", "\t", "\r"]


@pytest.mark.parametrize("first", STARTS)
def test_a_cell_starting_a_formula_gets_a_quote(first):
    assert csv_cell(first + "1+1") == "'" + first + "1+1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (12, 12),
        ("", ""),
        ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ("a=1", "a=1"),
        (' =1+1"', ' =1+1"'),
        ('{"note":"=1+1"}', '{"note":"=1+1"}'),
        ("'=1+1", "'=1+1"),
    ],
)
def test_other_cells_are_left_as_they_are(value, expected):
    assert csv_cell(value) == expected


def test_a_carriage_return_inside_a_cell_cannot_start_a_row():
    """Unquoted, "x\r=1+1" is two lines to a spreadsheet, the second a formula."""
    text = _csv_line(["x\r=1+1", 7, None])
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["x\r=1+1", "7", ""]]
    assert text.startswith('"x\r=1+1"')


class _View:
    """A view holding given audit rows (as a store returns them), for `Queries.export`."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        self.stored = stored

    def fetch(self, sql: str, params: Any) -> list[dict[str, Any]]:
        return self.stored if "position > ?" not in sql else []


def _stored_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: f"{c}-value" for c in rows.AUDIT_COLUMNS}
    row.update(position=7, payload=json.dumps({"customer_name": "=1+1"}), **values)
    return row


def test_stored_values_from_before_validation_are_quoted():
    """E.g. a tenant_id stored before tenant ids were validated, and control characters."""
    stored = _stored_row(
        tenant_id='=HYPERLINK("http://evil.example","x")',
        principal="@SUM(A1:A9)",
        correlation_id="\t=1+1",
        migration_id="\r-1",
        partner_id="+fabrikam",
    )
    text = "".join(Queries(_View([stored]), None).export("csv"))
    (row,) = csv.DictReader(io.StringIO(text, newline=""))
    assert row["tenant_id"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["principal"] == "'@SUM(A1:A9)"
    assert row["correlation_id"] == "'\t=1+1"
    assert row["migration_id"] == "'\r-1"
    assert row["partner_id"] == "'+fabrikam"
    assert row["position"] == "7"
    assert json.loads(row["payload"]) == {"customer_name": "=1+1"}

    (line,) = "".join(Queries(_View([stored]), None).export("jsonl")).splitlines()
    assert json.loads(line)["tenant_id"] == '=HYPERLINK("http://evil.example","x")'
    assert json.loads(line)["correlation_id"] == "\t=1+1"


def test_the_export_of_a_store_quotes_formula_cells(app, read_side):
    """Both stores: a principal and a correlation id that are formulas, through the tracker."""
    ctx = Context("@SUM(1+1)*cmd|' /C calc'!A0", "sales_agent", correlation_id="-2+3")
    start(
        app,
        ctx,
        partner_id="fabrikam",
        tenant_id="contoso.onmicrosoft.com",
        customer_name="=1+1",
        customer_region="europe",
        channel="direct",
    )
    read_side.catch_up()
    (row,) = csv.DictReader(io.StringIO("".join(read_side.queries.export("csv"))))
    assert row["principal"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["correlation_id"] == "'-2+3"
    assert json.loads(row["payload"])["customer_name"] == "=1+1"
    (line,) = "".join(read_side.queries.export("jsonl")).splitlines()
    assert json.loads(line)["principal"] == "@SUM(1+1)*cmd|' /C calc'!A0"
    assert json.loads(line)["correlation_id"] == "-2+3"
