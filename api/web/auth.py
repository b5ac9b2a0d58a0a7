"""Sign in and out of the web pages, and the dependencies every page uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Principal
from api.web.render import page
from api.web.session import (
    SESSION_COOKIE,
    SESSION_HOURS,
    SIGNIN_COOKIE,
    SessionKeys,
    new_signin_nonce,
    same_origin,
    set_cookie,
)
from domain.access import end_sessions

router = APIRouter(include_in_schema=False)


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in page, and back afterwards."""

    def __init__(self, back_to: str) -> None:
        self.back_to = back_to


class FormRefused(Exception):
    """A POST without a valid CSRF token, or from another site."""


def _keys(request: Request) -> SessionKeys:
    return request.app.state.session_keys  # type: ignore[no-any-return]


def _principal_of(request: Request, token: str) -> Principal | None:
    return request.app.state.keys.get(request.app.state.tracker, token)  # type: ignore[no-any-return]


def signed_in(request: Request) -> Principal:
    """The principal of the session cookie, checked as the API checks a key (a revoked key's
    session ends at once); also puts the session's CSRF token in the page context."""
    cookie = request.cookies.get(SESSION_COOKIE)
    opened = _keys(request).open_with_time(cookie)
    token, began = opened if opened is not None else ("", 0.0)
    principal = _principal_of(request, token) if token else None
    ended = None if principal is None else principal.sessions_ended_at
    if ended is not None and began <= ended.timestamp():
        principal = None  # signed out since: this session is over
    if principal is None or cookie is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(back)
    request.state.principal = principal
    request.state.csrf = _keys(request).csrf_token(cookie)
    request.state.token = token
    return principal


Viewer = Annotated[Principal, Depends(signed_in)]


def checked_form(
    request: Request, principal: Viewer, csrf: Annotated[str, Form()] = ""
) -> Principal:
    """A POST from one of our own forms, in this session: else FormRefused (403)."""
    if not same_origin(request) or not _keys(request).csrf_ok(
        request.cookies.get(SESSION_COOKIE), csrf
    ):
        raise FormRefused()
    return principal


Writer = Annotated[Principal, Depends(checked_form)]


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never `//host` or a scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/")
def home(request: Request) -> Response:
    token = _keys(request).open(request.cookies.get(SESSION_COOKIE))
    if token is not None and _principal_of(request, token) is not None:
        return RedirectResponse("/pipeline", status_code=303)
    return RedirectResponse("/signin", status_code=303)


def _signin_page(request: Request, back_to: str, error: str | None = None) -> Response:
    nonce = new_signin_nonce()
    response = page(
        request,
        "signin.html",
        status=401 if error else 200,
        title="Sign in",
        next=back_to,
        error=error,
        signin_csrf=_keys(request).csrf_token(nonce),
    )
    set_cookie(request, response, SIGNIN_COOKIE, nonce, max_age=3600)
    return response


@router.get("/signin")
def signin_form(request: Request, next: str = "/pipeline") -> Response:
    return _signin_page(request, _safe_next(next))


@router.post("/signin")
def signin(
    request: Request,
    key: Annotated[str, Form()] = "",  # any length: a wrong key is "not valid", not a 422
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/pipeline",
) -> Response:
    back_to = _safe_next(next)
    if not same_origin(request) or not _keys(request).csrf_ok(
        request.cookies.get(SIGNIN_COOKIE), csrf
    ):
        return _signin_page(request, back_to, "The form expired. Please sign in again.")
    token = key.strip()
    if not token or _principal_of(request, token) is None:
        return _signin_page(request, back_to, "That key is not valid (or it was revoked).")
    response = RedirectResponse(back_to, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, _keys(request).seal(token), SESSION_HOURS * 3600)
    set_cookie(request, response, SIGNIN_COOKIE, "", max_age=0)
    return response


@router.post("/signout")
def signout(request: Request, principal: Writer) -> Response:
    """Ends every session of this key, not only this browser's cookie: a copy of the cookie
    is refused from now on too (the store records when; every process sees it)."""
    end_sessions(request.app.state.tracker, request.state.token, datetime.now(UTC))
    response = RedirectResponse("/signin", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, "", max_age=0)
    return response


def register(app: FastAPI) -> None:
    @app.exception_handler(SignInNeeded)
    def sign_in_first(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(f"/signin?next={quote(exc.back_to, safe='')}", status_code=303)

    @app.exception_handler(FormRefused)
    def form_refused(request: Request, exc: FormRefused) -> Response:
        return page(
            request,
            "error.html",
            status=403,
            title="Form refused",
            message="This form was not sent from this site in your session (it may have "
            "expired). Go back, reload the page and try again.",
            code="csrf_failed",
        )
