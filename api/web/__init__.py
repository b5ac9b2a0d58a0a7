"""The web UI: server-rendered pages for partner operations staff and auditors, served by the
same FastAPI app as the API, signed in with the same API keys.

Pages read through the same read side and domain functions as `/v1` (the current-state and
audit views, `domain.view.describe`, `domain.advice`), and the one write form goes through the
same command path (`Tracker.execute`) with the same refusals. Every static file is package
data (static/), so nothing is fetched from the internet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from api.web import audit, auth, calendar, deadlines, docs, migrations, pipeline
from api.web.render import page
from api.web.session import SessionKeys

STATIC = Path(__file__).parent / "static"


class _HideCalendarAddresses(logging.Filter):
    """The access log never shows a calendar address: it is a secret, like a key."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) > 2 and str(args[2]).startswith("/calendar/"):
            record.args = (*args[:2], "/calendar/…", *args[3:])
        return True


_HIDE = _HideCalendarAddresses()


def install(app: FastAPI, session_key: Path | None) -> None:
    """The pages, their static files and sign-in. `session_key`: the file of the session
    secret (None: a secret made for this process only)."""
    app.state.session_keys = (
        SessionKeys(Fernet.generate_key())
        if session_key is None
        else SessionKeys.from_file(session_key)
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    access_log = logging.getLogger("uvicorn.access")
    if _HIDE not in access_log.filters:
        access_log.addFilter(_HIDE)
    for module in (docs, auth, pipeline, deadlines, migrations, audit, calendar):
        app.include_router(module.router)
    auth.register(app)


def error_page(request: Request, status: int, code: str, message: str) -> Response | None:
    """A refusal as a page, for a browser asking for one outside the API (`/v1`); None: the
    API's JSON shape."""
    path = request.url.path
    if path.startswith(("/v1/", "/static/")) or path in ("/openapi.json", "/metrics"):
        return None
    if "text/html" not in request.headers.get("accept", ""):
        return None
    titles = {401: "Sign in needed", 403: "Not permitted", 404: "Not found", 503: "Unavailable"}
    return page(
        request,
        "error.html",
        status=status,
        title=titles.get(status, "Something went wrong" if status >= 500 else "Refused"),
        message=message,
        code=code,
    )
