"""/docs renders Swagger UI from the package's own files: nothing from a CDN, no errors."""

from __future__ import annotations

import pytest

from tests.browser.conftest import PageLog

pytestmark = pytest.mark.browser


def test_docs_render_offline_from_vendored_files(server, page, page_log: PageLog):
    page.goto(f"{server.url}/docs")
    # Swagger UI built the operations from /openapi.json: its script and styles ran.
    page.wait_for_selector(".opblock", timeout=20_000)
    create = page.locator(".opblock-post .opblock-summary-path[data-path='/v1/migrations']")
    assert create.count() == 1, page.locator(".opblock-summary-path").all_inner_texts()
    assert page.locator(".opblock").count() >= 11
    # Styled by the vendored CSS (no CSS: the method badge has no background colour).
    badge = page.locator(".opblock-post .opblock-summary-method").first
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"

    vendored = [url for url in page_log.requests if "/static/vendor/swagger-ui/" in url]
    assert len(vendored) >= 2, page_log.requests
    assert f"{server.url}/openapi.json" in page_log.requests
    page_log.assert_local_only()
    page_log.assert_no_errors()
