"""Helpers for the web pages through a TestClient: the forms' CSRF token, and signing in."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, token: str, next: str = "/pipeline") -> str:
    """Sign in through the form; returns where the browser was sent."""
    form = client.get("/signin")
    response = client.post(
        "/signin",
        data={"key": token, "csrf": csrf_of(form.text), "next": next},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return str(response.headers["location"])
