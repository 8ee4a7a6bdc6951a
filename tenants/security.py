"""Login throttling and session lifetime.

Password failures are counted per (account, client address), never per account alone, so an
anonymous client cannot lock a known account out: the legitimate user logging in from another
address is not affected by someone else's failures.

- After ``NEPHELE_LOGIN_BACKOFF_AFTER`` failures (default 5) for an account from one address,
  that address must wait ``2^(n - AFTER)`` seconds after its n-th failure before it may try the
  account again, capped at ``NEPHELE_LOGIN_BACKOFF_MAX_S`` (default 900). The count is kept for
  ``NEPHELE_LOGIN_BACKOFF_MEMORY_S`` after the last failure (default a day) and reset by a
  successful login of that account from that address.
- An address with ``NEPHELE_LOGIN_FAILURES_PER_IP`` failures (default 50) across all accounts in
  a ``NEPHELE_LOGIN_IP_WINDOW_S`` window (default 900 s) is refused for every account until the
  window turns.
- Attempts refused by the throttle are not counted (they test no password), so waiting always
  helps. The client address is ``portal.api.client_ip``, like everywhere else.
- Sessions end after ``SESSION_COOKIE_AGE`` seconds idle (refreshed on every request) and after
  ``NEPHELE_SESSION_ABSOLUTE_S`` seconds since login whatever the activity.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal import api as portal_api

_THROTTLED = "_nephele_login_throttled"
log = logging.getLogger(__name__)
_warned_at = 0.0


class LoginThrottled(PermissionDenied):
    """Too many failed logins; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(throttle_message(retry_after))


def throttle_message(retry_after: int) -> str:
    return f"Too many failed logins. Try again in {retry_after} s."


def client_ip(request: HttpRequest | None) -> str | None:
    return portal_api.client_ip(request) if request is not None else None


def _account(username: str | None) -> str | None:
    if not username:
        return None
    # bounded keys whatever the client sends; case-insensitive like the user lookup
    return hashlib.sha256(str(username).strip().lower().encode(errors="replace")).hexdigest()[:32]


def _pair_keys(username: str | None, ip: str | None) -> tuple[str, str] | None:
    account = _account(username)
    if account is None:
        return None
    base = f"nephele:login-fail:pair:{account}:{ip or '-'}"
    return f"{base}:n", f"{base}:last"


def _ip_key(ip: str | None, now: float) -> tuple[str, int] | None:
    if not ip:
        return None
    window = max(1, settings.NEPHELE_LOGIN_IP_WINDOW_S)
    bucket = int(now) // window
    return f"nephele:login-fail:ip:{ip}:{bucket}", window - int(now) % window


def backoff_s(failures: int) -> int:
    """Seconds to wait after the ``failures``-th failure for one (account, address)."""
    over = failures - settings.NEPHELE_LOGIN_BACKOFF_AFTER
    if over < 0:
        return 0
    cap = settings.NEPHELE_LOGIN_BACKOFF_MAX_S
    return cap if over >= 30 else min(cap, 2**over)


def _outage_tolerant(default: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """When the cache (Redis) cannot be reached, the throttle neither counts nor refuses: people
    can still sign in during a Redis outage (the password check itself needs only the
    database). Logged, at most once a minute."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def tolerant(*args: Any, **kwargs: Any) -> Any:
            global _warned_at
            try:
                return fn(*args, **kwargs)
            except redis.RedisError as exc:
                if time.time() - _warned_at > 60:
                    _warned_at = time.time()
                    log.warning("login throttle not enforced: Redis unreachable (%s)", exc)
                return default

        return tolerant

    return wrap


@_outage_tolerant(default=0)
def retry_after(username: str | None, ip: str | None) -> int:
    """Seconds before ``ip`` may try a password for ``username`` again; 0: now."""
    now = time.time()
    wait = 0
    ip_key = _ip_key(ip, now)
    if ip_key is not None and (cache.get(ip_key[0]) or 0) >= settings.NEPHELE_LOGIN_FAILURES_PER_IP:
        wait = ip_key[1]
    keys = _pair_keys(username, ip)
    if keys is not None:
        found = cache.get_many(keys)
        pause = backoff_s(int(found.get(keys[0]) or 0))
        if pause:
            wait = max(wait, math.ceil(float(found.get(keys[1]) or 0) + pause - now))
    return max(0, wait)


def check(request: HttpRequest | None, username: str | None) -> None:
    """Raise ``LoginThrottled`` if this request may not try a password for ``username`` now."""
    wait = retry_after(username, client_ip(request))
    if wait > 0:
        if request is not None:
            setattr(request, _THROTTLED, wait)
        raise LoginThrottled(wait)


def _incr(key: str, ttl: int) -> None:
    if not cache.add(key, 1, ttl):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, ttl)


@_outage_tolerant(default=None)
def note_failure(username: str | None, ip: str | None) -> None:
    """Count one failed login of ``username`` from ``ip``."""
    now = time.time()
    ip_key = _ip_key(ip, now)
    if ip_key is not None:
        _incr(ip_key[0], ip_key[1] + 1)
    keys = _pair_keys(username, ip)
    if keys is not None:
        memory = settings.NEPHELE_LOGIN_BACKOFF_MEMORY_S
        _incr(keys[0], memory)
        cache.touch(keys[0], memory)
        cache.set(keys[1], now, memory)


@_outage_tolerant(default=None)
def reset(username: str | None, ip: str | None) -> None:
    keys = _pair_keys(username, ip)
    if keys is not None:
        cache.delete_many(keys)


def record_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    """``user_login_failed`` handler: count the failure for the (account, address) and the address."""
    if request is not None and getattr(request, _THROTTLED, None):
        return  # refused by the throttle: no password was tried
    note_failure(credentials.get("username"), client_ip(request))


def record_login(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    """``user_logged_in`` handler: remember when the session began (absolute expiry) and forget
    the failures of this account from this address."""
    request.session["nephele_login_at"] = int(time.time())
    ip = client_ip(request)
    reset(user.get_username(), ip)
    typed = getattr(request, "POST", {}).get("username") if request.method == "POST" else None
    if typed:
        reset(typed, ip)


class ThrottledModelBackend(ModelBackend):
    """Django's password backend, refusing (account, address) pairs and addresses that failed
    too often (``check``)."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kw: Any
    ) -> Any:
        check(request, username)
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
