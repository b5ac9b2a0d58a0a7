"""docs/domain.md keeps up with the code: every event and every refusal code is listed."""

from __future__ import annotations

import re
from pathlib import Path

from domain.decider import EVENTS

ROOT = Path(__file__).parent.parent.parent
DOC = (ROOT / "docs" / "domain.md").read_text()
_RAISED = re.compile(r'(?:RuleViolated|Conflict|NotFound|InvalidInput)\(\s*"([a-z_]+)"', re.S)


def test_every_event_is_in_the_catalogue():
    for name in EVENTS:
        assert f"| `{name}`" in DOC, name


def test_every_refusal_code_the_domain_raises_is_documented():
    sources = [*(ROOT / "domain").rglob("*.py")]
    codes = {code for p in sources for code in _RAISED.findall(p.read_text())}
    assert len(codes) > 30  # the pattern still finds them
    missing = sorted(c for c in codes if f"`{c}`" not in DOC)
    assert missing == []
