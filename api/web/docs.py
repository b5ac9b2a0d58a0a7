"""The OpenAPI docs, served offline: Swagger UI's files are vendored as package data
(static/vendor/swagger-ui), not loaded from a CDN as FastAPI's default page does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

_VENDOR = "/static/vendor/swagger-ui"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} — API docs",
        swagger_js_url=f"{_VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{_VENDOR}/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )
    # Swagger UI's page starts itself with an inline script, so the pages' policy does not
    # fit it; it still may not be framed.
    page.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page
