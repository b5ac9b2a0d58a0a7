"""Sign-in, sessions and CSRF of the web pages (TestClient, both stores)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from api.web.session import SESSION_COOKIE, SESSION_HOURS, SessionKeys
from domain.access import revoke_key
from tests.api.conftest import Api
from tests.api.pages import csrf_of, sign_in


def test_home_leads_to_sign_in_then_to_the_pipeline(api: Api) -> None:
    c = api.client
    assert c.get("/", follow_redirects=False).headers["location"] == "/signin"
    sign_in(c, api.tokens["admin_a"])
    assert c.get("/", follow_redirects=False).headers["location"] == "/pipeline"


def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(api: Api) -> None:
    response = api.client.get("/migrations?stage=accepted", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fmigrations%3Fstage%3Daccepted"
    form = api.client.get(response.headers["location"])
    assert 'name="next" value="/migrations?stage=accepted"' in form.text
    landed = sign_in(api.client, api.tokens["admin_a"], next="/migrations?stage=accepted")
    assert landed == "/migrations?stage=accepted"


def test_the_session_cookie_is_httponly_strict_and_holds_no_readable_key(api: Api) -> None:
    c = api.client
    form = c.get("/signin")
    response = c.post(
        "/signin",
        data={"key": api.tokens["admin_a"], "csrf": csrf_of(form.text), "next": "/pipeline"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    cookie = next(h for h in cookies if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert f"Max-Age={SESSION_HOURS * 3600}" in cookie
    assert api.tokens["admin_a"] not in cookie  # encrypted, not merely signed


def test_a_wrong_key_is_refused_on_the_form(api: Api) -> None:
    c = api.client
    form = c.get("/signin")
    response = c.post("/signin", data={"key": "csp_nope", "csrf": csrf_of(form.text)})
    assert response.status_code == 401
    assert "That key is not valid" in response.text
    assert SESSION_COOKIE not in c.cookies


def test_sign_in_without_the_forms_token_is_refused(api: Api) -> None:
    """Login CSRF: another site cannot sign a visitor in with its own key."""
    c = api.client
    c.get("/signin")
    response = c.post("/signin", data={"key": api.tokens["admin_a"], "csrf": "forged"})
    assert response.status_code == 401
    assert "The form expired" in response.text
    assert SESSION_COOKIE not in c.cookies


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_sign_in_never_redirects_off_site(api: Api, target: str) -> None:
    assert sign_in(api.client, api.tokens["admin_a"], next=target) == "/"


def test_a_revoked_key_ends_its_session_at_the_next_request(api: Api) -> None:
    c = api.client
    sign_in(c, api.tokens["sales_a"])
    assert c.get("/pipeline").status_code == 200
    revoke_key(api.tracker, "sales-a")
    response = c.get("/pipeline", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")


def test_a_forged_foreign_or_expired_cookie_is_no_session(api: Api) -> None:
    keys: SessionKeys = api.client.app.state.session_keys
    token = api.tokens["admin_a"]
    assert keys.open(keys.seal(token)) == token
    assert keys.open(keys.seal(token)[:-2] + "xx") is None
    assert keys.open(keys.seal(token, now=time.time() - SESSION_HOURS * 3600 - 5)) is None
    assert SessionKeys(Fernet.generate_key()).open(keys.seal(token)) is None


def test_sign_out_needs_the_forms_token_and_ends_the_session(api: Api) -> None:
    c = api.client
    sign_in(c, api.tokens["admin_a"])
    assert c.post("/signout", data={"csrf": "forged"}).status_code == 403
    page = c.get("/pipeline")
    response = c.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert response.headers["location"] == "/signin"
    assert c.get("/pipeline", follow_redirects=False).status_code == 303


def test_signing_out_ends_a_copied_cookie_too_and_a_new_sign_in_works(api: Api) -> None:
    c = api.client
    sign_in(c, api.tokens["admin_a"])
    copied = c.cookies[SESSION_COOKIE]
    c.post("/signout", data={"csrf": csrf_of(c.get("/pipeline").text)})
    c.cookies.set(SESSION_COOKIE, copied)
    assert c.get("/pipeline", follow_redirects=False).status_code == 303
    c.cookies.clear()
    sign_in(c, api.tokens["admin_a"])  # at once, in the same second
    assert c.get("/pipeline", follow_redirects=False).status_code == 200
    other = api.tokens["sales_a"]  # another key's sessions are untouched
    sign_in(c, other)
    assert c.get("/pipeline", follow_redirects=False).status_code == 200


def test_a_post_from_another_site_is_refused_even_with_the_token(api: Api) -> None:
    c = api.client
    sign_in(c, api.tokens["admin_a"])
    token = csrf_of(c.get("/pipeline").text)
    response = c.post("/signout", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    assert c.get("/pipeline", follow_redirects=False).status_code == 200  # still signed in


def test_pages_forbid_framing_and_foreign_scripts(api: Api) -> None:
    sign_in(api.client, api.tokens["admin_a"])
    headers = api.client.get("/pipeline").headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert headers["cache-control"] == "no-store"


def test_the_api_does_not_accept_the_session_cookie(api: Api) -> None:
    """The cookie signs in pages only: /v1 still wants a bearer key (no CSRF surface)."""
    c = api.client
    sign_in(c, api.tokens["admin_a"])
    assert c.get("/v1/migrations").status_code == 401


def test_processes_reading_one_secret_file_share_sessions(tmp_path: Path) -> None:
    path = tmp_path / "session.key"
    first, second = SessionKeys.from_file(path), SessionKeys.from_file(path)
    assert second.open(first.seal("csp_x")) == "csp_x"
    assert oct(path.stat().st_mode)[-3:] == "600"
