"""Offer identity: which offer ids name the same product.

- Ids compare without regard to case or surrounding blanks (`O365_E3` is `o365_e3`).
- A new-commerce product id with its SKU (`CFQ7TTC0LF8Q:0001`) is an offer id of its own.
- A family is one product: its offers are equivalent (a retired legacy offer and its
  new-commerce successor), and licenses move between them by reassignment. Within a family,
  the ids that name one offer (a short name, the Entra SKU part number, the legacy offer GUID)
  are the same offer. The shipped catalogue (`data/offers.json`) can be extended by a
  deployment's own file of the same shape (setting `offer_catalogue`).

Decisions that depend on the catalogue (the family of an original, whether a replacement needs
licenses reassigned) are taken once, when the command is decided, and stored in the event: a
later change of the catalogue never rewrites what history says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from domain.errors import InvalidInput


def offer_key(offer_id: str) -> str:
    """The comparable form of an offer id."""
    return offer_id.strip().casefold()


@dataclass(frozen=True)
class Catalogue:
    """Offer id key -> family, offer id key -> the offer it names, and family names."""

    families: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def offer(self, offer_id: str) -> str:
        """The offer an id names: ids that are aliases of one offer give the same answer."""
        key = offer_key(offer_id)
        return self.aliases.get(key, key)

    def same_offer(self, a: str, b: str) -> bool:
        return self.offer(a) == self.offer(b)

    def family(self, offer_id: str) -> str:
        """The family of an offer: its catalogue family, else its own key (a family of one)."""
        key = offer_key(offer_id)
        return self.families.get(key, key)

    def knows(self, offer_id: str) -> bool:
        return offer_key(offer_id) in self.families

    def equivalent(self, a: str, b: str) -> bool:
        return self.family(a) == self.family(b)

    def extended(self, data: Mapping[str, Any]) -> Catalogue:
        """This catalogue plus the families of `data` (same shape as data/offers.json). An id
        listed again moves to the new family: a deployment's file wins over the shipped one."""
        families, names, aliases = dict(self.families), dict(self.names), dict(self.aliases)
        for family, name, offers in _entries(data):
            names[family] = name
            for group in offers:
                ids = [group] if isinstance(group, str) else group
                for offer in ids:
                    families[offer_key(offer)] = family
                    aliases[offer_key(offer)] = offer_key(ids[0])
        return Catalogue(families, names, aliases)

    @classmethod
    def from_file(cls, path: str | Path, base: Catalogue | None = None) -> Catalogue:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput("invalid_offer_catalogue", f"{path}: {exc}") from None
        return (base or shipped()).extended(data)


def _entries(data: Mapping[str, Any]) -> Iterable[tuple[str, str, list[Any]]]:
    families = data.get("families") if isinstance(data, Mapping) else None
    if not isinstance(families, list):
        raise InvalidInput("invalid_offer_catalogue", "the catalogue needs a list 'families'")
    for entry in families:
        ok = (
            isinstance(entry, Mapping)
            and isinstance(entry.get("family"), str)
            and entry["family"].strip()
            and isinstance(entry.get("offers"), list)
            and all(_is_offer(o) for o in entry["offers"])
        )
        if not ok:
            raise InvalidInput(
                "invalid_offer_catalogue",
                "each family needs a non-empty 'family' and a list 'offers' of offer ids, or of "
                "lists of ids that name one offer",
            )
        family = offer_key(entry["family"])
        yield family, str(entry.get("name") or family), list(entry["offers"])


def _is_offer(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, list) and bool(value) and all(_is_offer(v) for v in value)


@cache
def shipped() -> Catalogue:
    text = resources.files("domain").joinpath("data/offers.json").read_text("utf-8")
    return Catalogue().extended(json.loads(text))
