"""Login throttling, session expiry (idle and absolute), logout that ends the session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    cache.clear()


def login(c: Client, username: str, password: str, ip: str = "10.9.8.7") -> int:
    return c.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip).status_code


def test_failures_for_an_account_from_elsewhere_do_not_lock_it(member: Any, settings: Any) -> None:
    """The old per-account lock-out is gone (tests/tenants/test_login_throttling.py)."""
    c = Client()
    for i in range(150):
        login(c, "member", "wrong", ip=f"10.0.{i // 100}.{i % 100}")
    assert login(c, "member", "pw-123456789") == 302


def test_address_is_limited_across_accounts(member: Any, settings: Any) -> None:
    settings.NEPHELE_LOGIN_FAILURES_PER_IP = 3
    c = Client()
    for name in ("a", "b", "c"):
        login(c, name, "wrong", ip="10.1.1.1")
    assert login(c, "member", "pw-123456789", ip="10.1.1.1") == 429
    assert login(c, "member", "pw-123456789", ip="10.1.1.2") == 302


def test_absolute_session_lifetime(member: Any, settings: Any) -> None:
    c = Client()
    assert login(c, "member", "pw-123456789") == 302
    assert c.get("/api/v1/projects/").status_code == 200
    session = c.session
    session["nephele_login_at"] = int(time.time()) - settings.NEPHELE_SESSION_ABSOLUTE_S - 1
    session.save()
    assert c.get("/api/v1/projects/").status_code == 401  # logged out


def test_idle_lifetime_is_configured_and_refreshed(settings: Any) -> None:
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert 0 < settings.SESSION_COOKIE_AGE <= 24 * 3600


def test_logout_ends_the_session(member: Any) -> None:
    c = Client()
    login(c, "member", "pw-123456789")
    key = c.session.session_key
    assert c.post("/logout/").status_code == 302
    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=key).exists()
    assert c.get("/api/v1/projects/").status_code == 401


def test_passwords_are_hashed_with_argon2_in_production(settings: Any) -> None:
    from portal import settings as prod

    assert prod.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
