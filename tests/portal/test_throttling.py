"""API rate limits (portal/throttling.py): 429 + Retry-After per user, per token and per
anonymous address, through the real API on the test Redis; and the client address behind
trusted proxies (portal.api.client_ip)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from rest_framework.test import APIClient

from portal import throttling
from portal.api import client_ip
from tenants import credentials
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

VMS = "/api/v1/vms/"
SCHEMA = "/api/v1/schema/"


def _token_client(user: Any, name: str = "t") -> APIClient:
    _token, secret = credentials.create_token(user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _statuses(client: APIClient, n: int, url: str = VMS, **extra: Any) -> list[int]:
    return [client.get(url, **extra).status_code for _ in range(n)]


@pytest.fixture
def frozen(monkeypatch: Any) -> dict[str, float]:
    """A controllable clock for the throttle (the middle of a window, so nothing turns over)."""
    clock = {"now": 1_000_000 * 60 + 30.0}
    monkeypatch.setattr(throttling, "clock", lambda: clock["now"])
    return clock


def test_a_user_over_the_rate_gets_429_with_retry_after_and_others_are_served(
    settings: Any, member: Any, frozen: Any
) -> None:
    settings.NEPHELE_API_RATE_USER = "5/min"
    settings.NEPHELE_API_RATE_TOKEN = "0"
    client = _token_client(member)
    assert _statuses(client, 5) == [200] * 5
    refused = client.get(VMS)
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 1 <= wait <= 120
    assert "throttled" in refused.json()["detail"]
    other = _token_client(UserFactory(username="other"))
    assert other.get(VMS).status_code == 200  # one user's flood is not everyone's outage


def test_waiting_as_told_gets_in_because_refused_requests_are_not_counted(
    settings: Any, member: Any, frozen: Any
) -> None:
    settings.NEPHELE_API_RATE_USER = "3/min"
    settings.NEPHELE_API_RATE_TOKEN = "0"
    client = _token_client(member)
    assert _statuses(client, 3) == [200] * 3
    assert _statuses(client, 20) == [429] * 20  # hammering does not push the wait further out
    wait = int(client.get(VMS)["Retry-After"])
    frozen["now"] += wait - 1
    assert client.get(VMS).status_code == 429
    frozen["now"] += 1
    assert client.get(VMS).status_code == 200


def test_a_token_has_its_own_budget_inside_its_users(settings: Any, member: Any, frozen: Any) -> None:
    settings.NEPHELE_API_RATE_USER = "10/min"
    settings.NEPHELE_API_RATE_TOKEN = "3/min"
    script, cli = _token_client(member, "script"), _token_client(member, "cli")
    assert _statuses(script, 4) == [200, 200, 200, 429]
    assert _statuses(cli, 3) == [200] * 3  # the runaway token did not use up its user's budget
    session = APIClient()
    session.force_login(member)
    # the user's budget: 6 counted so far (the refused one was not), 4 left for every client
    assert _statuses(session, 5) == [200] * 4 + [429]


def test_anonymous_requests_count_per_address_behind_trusted_proxies(settings: Any, db: Any, frozen: Any) -> None:
    settings.NEPHELE_API_RATE_ANON = "2/min"
    settings.NEPHELE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    client = APIClient()
    proxy = {"REMOTE_ADDR": "10.1.2.3"}
    a = {**proxy, "HTTP_X_FORWARDED_FOR": "192.0.2.10"}
    b = {**proxy, "HTTP_X_FORWARDED_FOR": "192.0.2.20"}
    assert _statuses(client, 3, SCHEMA, **a) == [200, 200, 429]
    assert _statuses(client, 2, SCHEMA, **b) == [200, 200]  # another client behind the same proxy
    # a client cannot escape its budget by forging the header: the proxy appends the real address
    forged = {**proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.1, 192.0.2.10"}
    assert client.get(SCHEMA, **forged).status_code == 429
    # nor by sending the header directly from an untrusted address
    direct = {"REMOTE_ADDR": "192.0.2.10", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert client.get(SCHEMA, **direct).status_code == 429


def test_concurrent_requests_admit_exactly_the_rate(settings: Any, transactional_db: Any, frozen: Any) -> None:
    settings.NEPHELE_API_RATE_USER = "10/min"
    settings.NEPHELE_API_RATE_TOKEN = "0"
    user = UserFactory(username="racer")
    results: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        client = APIClient()
        client.force_authenticate(user)
        for _ in range(3):
            code = client.get(VMS).status_code
            with lock:
                results.append(code)

    threads = [threading.Thread(target=hit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 10 + [429] * 20


def test_an_unreachable_redis_does_not_take_the_api_or_the_login_down(settings: Any, member: Any) -> None:
    settings.NEPHELE_API_RATE_USER = "1/min"
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"},
    }
    client = APIClient()
    member.set_password("pw-123456")
    member.save()
    assert client.post("/login/", {"username": member.username, "password": "wrong"}).status_code == 200
    assert client.post("/login/", {"username": member.username, "password": "pw-123456"}).status_code == 302
    assert _statuses(client, 3) == [200] * 3


@pytest.mark.parametrize("text", ["ten/min", "10/fortnight", "10"])
def test_a_malformed_rate_is_refused_naming_the_format(text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="requests>/<s|min|h|day>"):
        throttling.parse_rate(text)


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.1", "", "192.0.2.1"),
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # not a trusted proxy: its header is ignored
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "203.0.113.9, 10.0.0.7", "203.0.113.9"),  # two proxies in a row
        ("10.0.0.5", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own entry is left of it
        ("10.0.0.5", "garbage, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "203.0.113.9, garbage", "10.0.0.5"),  # unparsable from the proxy: stop there
        ("::1", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(settings: Any, remote: str, forwarded: str, expected: str) -> None:
    settings.NEPHELE_TRUSTED_PROXIES = ["10.0.0.0/8", "::1"]
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
