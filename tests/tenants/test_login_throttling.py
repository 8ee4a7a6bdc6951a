"""Login throttling without lock-out: failures count per (account, address) with exponential
back-off and per address across accounts; nobody can lock an account out from elsewhere.
(tests/conftest.py forgets the throttle state before each test.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tenants import security

PW = "pw-123456789"


class Clock:
    def __init__(self, monkeypatch: Any) -> None:
        self.now = 1_899_999_900.0  # the start of a 900 s per-address window
        monkeypatch.setattr(security.time, "time", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: Any) -> Clock:
    return Clock(monkeypatch)


def post(c: Client, username: str, password: str, ip: str) -> Any:
    return c.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(c: Client) -> bool:
    return "_auth_user_id" in c.session


def test_attacker_cannot_lock_admin_out_from_another_address(admin_user: Any, clock: Clock) -> None:
    attacker = Client()
    for _ in range(200):
        assert post(attacker, "cloudadmin", "wrong", "10.0.0.9").status_code in (200, 429)
    assert not logged_in(attacker)
    admin = Client()
    r = post(admin, "cloudadmin", PW, "10.0.0.20")
    assert r.status_code == 302 and logged_in(admin)


def test_attacker_address_is_backed_off_for_that_account(admin_user: Any, clock: Clock, settings: Any) -> None:
    settings.NEPHELE_LOGIN_BACKOFF_AFTER = 5
    c = Client()
    for _ in range(5):
        assert post(c, "cloudadmin", "wrong", "10.0.0.9").status_code == 200  # form shown again
    r = post(c, "cloudadmin", PW, "10.0.0.9")  # 5th failure: wait 2^0 = 1 s
    assert r.status_code == 429 and r["Retry-After"] == "1"
    assert "Try again in 1 s" in r.content.decode() and not logged_in(c)
    clock.now += 1
    assert post(c, "cloudadmin", "wrong", "10.0.0.9").status_code == 200  # 6th failure: 2 s
    r = post(c, "cloudadmin", PW, "10.0.0.9")
    assert r.status_code == 429 and r["Retry-After"] == "2"
    # refused attempts are not counted: waiting always helps
    for _ in range(20):
        assert post(c, "cloudadmin", "wrong", "10.0.0.9").status_code == 429
    clock.now += 2
    assert post(c, "cloudadmin", PW, "10.0.0.9").status_code == 302 and logged_in(c)


def test_backoff_is_exponential_and_capped(admin_user: Any, clock: Clock, settings: Any) -> None:
    settings.NEPHELE_LOGIN_BACKOFF_AFTER = 5
    settings.NEPHELE_LOGIN_BACKOFF_MAX_S = 900
    waits = []
    c = Client()
    for n in range(1, 21):
        assert post(c, "cloudadmin", "wrong", "10.0.0.9").status_code == 200
        if n >= 5:
            r = post(c, "cloudadmin", "wrong", "10.0.0.9")
            assert r.status_code == 429
            waits.append(int(r["Retry-After"]))
            clock.now += waits[-1]
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert max(waits) == 900 and waits[-1] == 900


def test_address_is_refused_for_other_accounts_after_the_per_address_limit(
    member: Any, admin_user: Any, clock: Clock, settings: Any
) -> None:
    settings.NEPHELE_LOGIN_FAILURES_PER_IP = 50
    settings.NEPHELE_LOGIN_IP_WINDOW_S = 900
    c = Client()
    for i in range(50):  # a spray: 50 names, one failure each (no back-off per account)
        assert post(c, f"user{i}", "wrong", "10.0.0.9").status_code == 200
    clock.now += 100
    r = post(c, "member", PW, "10.0.0.9")
    assert r.status_code == 429 and r["Retry-After"] == "800" and not logged_in(c)
    # other addresses are not affected
    other = Client()
    assert post(other, "member", PW, "10.0.0.10").status_code == 302 and logged_in(other)
    # the window turns
    clock.now += 800
    assert post(c, "member", PW, "10.0.0.9").status_code == 302 and logged_in(c)


def test_success_resets_the_account_address_counter(member: Any, clock: Clock, settings: Any) -> None:
    settings.NEPHELE_LOGIN_BACKOFF_AFTER = 5
    c = Client()
    for _ in range(4):
        post(c, "member", "wrong", "10.0.0.9")
    assert post(c, "member", PW, "10.0.0.9").status_code == 302
    c = Client()
    for _ in range(4):  # a fresh allowance: 4 more failures are not backed off
        assert post(c, "member", "wrong", "10.0.0.9").status_code == 200
    assert post(c, "member", PW, "10.0.0.9").status_code == 302 and logged_in(c)


def test_user_name_case_does_not_escape_the_counter(member: Any, clock: Clock, settings: Any) -> None:
    settings.NEPHELE_LOGIN_BACKOFF_AFTER = 5
    c = Client()
    for name in ("member", "MEMBER", "Member", "mEmber", " member"):
        post(c, name, "wrong", "10.0.0.9")
    assert post(c, "MeMbEr", "wrong", "10.0.0.9").status_code == 429


def test_unknown_user_is_throttled_like_a_known_one(member: Any, clock: Clock) -> None:
    c = Client()
    answers = set()
    for name in ("member", "nobody-here"):
        for _ in range(5):
            post(c, name, "wrong", "10.0.0.9")
        r = post(c, name, "wrong", "10.0.0.9")
        answers.add((r.status_code, r["Retry-After"]))
    assert answers == {(429, "1")}


def test_proxy_address_helper_is_used(member: Any, clock: Clock, monkeypatch: Any) -> None:
    """The throttle keys on portal.api.client_ip, so a trusted proxy header is honoured the same
    way as in the audit log."""
    import portal.api

    monkeypatch.setattr(portal.api, "client_ip", lambda request: request.META.get("HTTP_X_TEST_CLIENT"))
    c = Client()
    for _ in range(6):
        c.post(
            "/login/", {"username": "member", "password": "wrong"}, REMOTE_ADDR="10.0.0.1", HTTP_X_TEST_CLIENT="1.1.1.1"
        )
    r = c.post("/login/", {"username": "member", "password": PW}, REMOTE_ADDR="10.0.0.1", HTTP_X_TEST_CLIENT="2.2.2.2")
    assert r.status_code == 302
