"""Login throttling and session lifetime.

- At most ``NEPHELE_LOGIN_FAILURES_PER_USER`` failed logins per account per hour (default 100)
  and ``NEPHELE_LOGIN_FAILURES_PER_IP`` per source address (default 300); past that, even the
  right password is refused until the hour turns.
- Sessions end after ``SESSION_COOKIE_AGE`` seconds idle (refreshed on every request) and after
  ``NEPHELE_SESSION_ABSOLUTE_S`` seconds since login whatever the activity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

WINDOW_S = 3600


def _keys(username: str | None, ip: str | None) -> list[tuple[str, int]]:
    bucket = int(time.time()) // WINDOW_S
    keys = []
    if username:
        keys.append((f"nephele:login-fail:user:{username.lower()}:{bucket}", settings.NEPHELE_LOGIN_FAILURES_PER_USER))
    if ip:
        keys.append((f"nephele:login-fail:ip:{ip}:{bucket}", settings.NEPHELE_LOGIN_FAILURES_PER_IP))
    return keys


def client_ip(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def is_throttled(username: str | None, ip: str | None) -> bool:
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(username, ip))


def record_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    """``user_login_failed`` handler: count the failure for the account and the address."""
    for key, _limit in _keys(credentials.get("username"), client_ip(request)):
        if not cache.add(key, 1, WINDOW_S):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, WINDOW_S)


def record_login(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    """``user_logged_in`` handler: remember when the session began (absolute expiry)."""
    request.session["nephele_login_at"] = int(time.time())


class ThrottledModelBackend(ModelBackend):
    """Django's password backend, refusing accounts and addresses with too many failures."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kw: Any
    ) -> Any:
        if is_throttled(username, client_ip(request)):
            raise PermissionDenied("too many failed logins; try again later")
        return super().authenticate(request, username=username, password=password, **kw)


class SessionLifetimeMiddleware:
    """Logs out sessions older than the absolute lifetime."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            started = request.session.get("nephele_login_at")
            if started is None:
                request.session["nephele_login_at"] = int(time.time())
            elif time.time() - started > settings.NEPHELE_SESSION_ABSOLUTE_S:
                logout(request)
        return self.get_response(request)
