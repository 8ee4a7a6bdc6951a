"""API request rate limits: one client cannot exhaust the server for everyone.

Every REST request counts against its user (``NEPHELE_API_RATE_USER``) and, when it carries an
API token, against that token too (``NEPHELE_API_RATE_TOKEN``), so a runaway script with one
token is stopped before it starves its owner's other tools; anonymous requests to the endpoints
open to them count against their address (``NEPHELE_API_RATE_ANON``, the address from
``portal.api.client_ip``, so trusted proxies are honoured). A refused request answers 429 with
``Retry-After`` (whole seconds) and is not counted, so a client that waits as told gets in.

The count is a sliding window estimated from two fixed windows (the current window's count plus
the previous window's, weighted by how much of it still overlaps), kept in Redis with one
pipelined round trip per scope: atomic under concurrency, and without the bursts at window
edges a plain fixed window allows. When Redis cannot be reached the limit is not enforced
(requests are served, a warning is logged at most once a minute): the limit protects the
service, it must never be the reason it is down.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import BaseThrottle

from .clientip import client_ip

log = logging.getLogger(__name__)

PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
KEY_PREFIX = "nephele:rate:"
clock = time.time  # the throttle's clock (tests move it instead of sleeping)
_warned_at = 0.0


@dataclass(frozen=True)
class Rate:
    requests: int
    period_s: int


@functools.lru_cache(maxsize=16)
def parse_rate(text: str | None) -> Rate | None:
    """``"600/min"`` → Rate(600, 60); empty, ``"0"`` or ``"off"`` → no limit."""
    text = (text or "").strip().lower()
    if text in ("", "0", "off", "none"):
        return None
    count, _, unit = text.partition("/")
    try:
        rate = Rate(int(count), PERIODS[unit.strip()])
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"API rate {text!r}: expected '<requests>/<s|min|h|day>', e.g. '600/min'") from None
    return rate if rate.requests > 0 else None


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # short timeouts: an unreachable Redis must not stall every API request
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def _redis() -> redis.Redis:
    return _client(str(settings.CACHES["default"]["LOCATION"]))


def _weighted(previous: int, current: int, elapsed: float, period: int) -> float:
    return previous * (1 - elapsed / period) + current


def _wait_s(rate: Rate, previous: int, current: int, elapsed: float) -> int:
    """Seconds until one more request fits, ``current`` requests already counted this window."""
    limit, period = rate.requests, rate.period_s
    if current + 1 <= limit and previous > 0:
        # the previous window's share fades out within this window
        wait = period * (1 - (limit - current - 1) / previous) - elapsed
    else:
        # only the next window has room: its previous share is this window's count
        wait = (period - elapsed) + max(0.0, period * (1 - (limit - 1) / max(current, 1)))
    return max(1, math.ceil(wait))


def _count(r: redis.Redis, scope: str, rate: Rate, now: float) -> int:
    """Count one request for ``scope``: 0 when it fits the rate, else the seconds to wait (and
    then it is not counted)."""
    window = int(now // rate.period_s)
    current_key, previous_key = f"{KEY_PREFIX}{scope}:{window}", f"{KEY_PREFIX}{scope}:{window - 1}"
    pipe = r.pipeline()
    pipe.incr(current_key)
    pipe.expire(current_key, 2 * rate.period_s + 1)
    pipe.get(previous_key)
    current, _, previous_raw = pipe.execute()
    previous = int(previous_raw or 0)
    elapsed = now - window * rate.period_s
    if _weighted(previous, int(current), elapsed, rate.period_s) <= rate.requests:
        return 0
    r.decr(current_key)
    return _wait_s(rate, previous, int(current) - 1, elapsed)


def _uncount(r: redis.Redis, scope: str, rate: Rate, now: float) -> None:
    r.decr(f"{KEY_PREFIX}{scope}:{int(now // rate.period_s)}")


def scopes(request: Any) -> list[tuple[str, Rate]]:
    """The (scope, rate) pairs a request counts against, narrowest first."""
    user = getattr(request, "user", None)
    found: list[tuple[str, Rate | None]] = []
    if user is not None and user.is_authenticated:
        token = getattr(request, "auth", None)
        token_pk = getattr(token, "pk", None)
        if token_pk is not None:
            found.append((f"token:{token_pk}", parse_rate(settings.NEPHELE_API_RATE_TOKEN)))
        found.append((f"user:{user.pk}", parse_rate(settings.NEPHELE_API_RATE_USER)))
    else:
        found.append((f"ip:{client_ip(request) or 'unknown'}", parse_rate(settings.NEPHELE_API_RATE_ANON)))
    return [(scope, rate) for scope, rate in found if rate is not None]


class ApiRateThrottle(BaseThrottle):
    """DRF throttle for every API view (``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]``)."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        global _warned_at
        pairs = scopes(request)
        if not pairs:
            return True
        now = clock()
        counted: list[tuple[str, Rate]] = []
        try:
            r = _redis()
            for scope, rate in pairs:
                wait = _count(r, scope, rate, now)
                if wait:
                    for done_scope, done_rate in counted:
                        _uncount(r, done_scope, done_rate, now)
                    self._wait = wait
                    return False
                counted.append((scope, rate))
        except redis.RedisError as exc:
            if now - _warned_at > 60:
                _warned_at = now
                log.warning("API rate limits not enforced: Redis unreachable (%s)", exc)
        return True

    def wait(self) -> float | None:
        return self._wait
