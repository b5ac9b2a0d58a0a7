"""Query parameters of the pages, read with the API's own types (the same shapes, the same
limits); a value that does not fit is reported on the page instead of being used."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from api.errors import ApiError


class Filters:
    """The filters a page was asked for: `values` holds the ones that parsed, `problems` one
    sentence per value that did not."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = {k: v for k, v in raw.items() if v != ""}
        self.values: dict[str, Any] = {}
        self.problems: list[str] = []

    def read(self, name: str, kind: Any, label: str) -> Any:
        text = self.raw.get(name)
        if text is None:
            return None
        try:
            value = TypeAdapter(kind).validate_python(text)
        except ValidationError as exc:
            self.problems.append(f"{label}: {exc.errors()[0]['msg']}")
            return None
        except ApiError as exc:  # `one_of` refuses with the allowed values
            self.problems.append(f"{label}: {exc.message.partition(': ')[2] or exc.message}")
            return None
        self.values[name] = value
        return value

    def text(self, name: str, label: str, limit: int = 200) -> str | None:
        """Free text, as the API's text filters take it: at most `limit` characters, no NUL."""
        value = self.raw.get(name)
        if value is None:
            return None
        if len(value) > limit:
            self.problems.append(f"{label}: at most {limit} characters")
            return None
        if "\x00" in value:
            self.problems.append(f"{label}: a NUL character is not text")
            return None
        self.values[name] = value
        return value

    def pick(self, name: str, allowed: Any, label: str) -> str | None:
        """A value from a closed set (a select's options)."""
        text = self.raw.get(name)
        if text is None:
            return None
        if text not in allowed:
            self.problems.append(f"{label}: not one of the choices offered")
            return None
        self.values[name] = text
        return text
