"""docs/ingest.md's openssl + curl example, run as written against a served tracker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server import ROOT, serving, settings_env
from domain.application import Tracker
from domain.commands import Command
from domain.context import Context

GUID = "5b0e1d2c-3a4f-4b6e-8d7c-9e0f1a2b3c4d"


def example() -> str:
    text = (ROOT / "docs" / "ingest.md").read_text()
    block = re.search(r"<!-- example:start -->\n```sh\n(.*?)```\n<!-- example:end -->", text, re.S)
    assert block, "docs/ingest.md lost its example"
    return block.group(1)


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="no openssl")
def test_the_documented_example_applies_a_notification(store_env, tmp_path: Path):
    tracker = Tracker(env=store_env)
    try:
        tracker.register_partner("fabrikam", "Fabrikam", "europe")
        migration = tracker.start(
            Context("sam", "sales_agent"),
            Command.of(
                "relationship_requested",
                partner_id="fabrikam",
                tenant_id="contoso.com",
                tenant_guid=GUID,
                customer_name="Contoso",
                customer_region="europe",
                channel="direct",
            ),
        ).migration
    finally:
        tracker.close()
    with serving(store_env) as (url, _process):
        env = {
            **os.environ,
            **settings_env(store_env),
            "API": url,
            "PARTNER": "fabrikam",
            "CUSTOMER_GUID": GUID,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", example()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == "applied", answer
    assert answer["migration_id"] == str(migration.id)
