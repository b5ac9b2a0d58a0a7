"""Charts as server-side SVG: bar lengths computed here, drawn by the templates."""

from __future__ import annotations

from dataclasses import dataclass

BAR_WIDTH = 300  # the SVG viewBox width of a full bar


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    href: str | None
    length: float  # 0..BAR_WIDTH, at least 2 for a non-zero value so it stays visible
    kind: str = ""  # a CSS modifier: "", "warning", "critical", "done"
    key: str = ""  # what it counts, for tests and scripts (data-key)


def bars(items: list[tuple[str, int, str | None, str, str]]) -> list[Bar]:
    """Bars for (label, value, link, kind, key) items, the largest drawn at full width."""
    top = max((value for _, value, _, _, _ in items), default=0)
    return [
        Bar(label, value, href, 0.0 if not value else max(2.0, BAR_WIDTH * value / top), kind, key)
        for label, value, href, kind, key in items
    ]
