"""CSP regions, and the ISO 3166 country codes that belong to each.

"The partner must be in the same region as the customer's tenant": partners and customers name
either a region or a country code; both are stored as the region (and the country, if given).
The table ships with the package (`data/regions.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from domain.errors import InvalidInput


@dataclass(frozen=True)
class Place:
    region: str
    country: str | None = None


@cache
def _table() -> tuple[tuple[str, ...], dict[str, str]]:
    data = json.loads(resources.files("domain").joinpath("data/regions.json").read_text("utf-8"))
    return tuple(data["regions"]), dict(data["countries"])


def regions() -> tuple[str, ...]:
    return _table()[0]


def place(value: str, field: str = "region") -> Place:
    """A region name (any case) or an ISO 3166-1 alpha-2 country code, as a `Place`."""
    names, countries = _table()
    text = value.strip() if isinstance(value, str) else ""
    if text.lower() in names:
        return Place(text.lower())
    if len(text) == 2 and text.upper() in countries:
        return Place(countries[text.upper()], text.upper())
    raise InvalidInput(
        f"invalid_{field}",
        f"{field} must be a CSP region ({', '.join(names)}) or an ISO 3166 country code",
        field=field,
        value=str(value)[:60],
    )
