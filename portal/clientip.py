"""The caller's address, behind trusted reverse proxies or not (no DRF here: the API's
throttle imports it while DRF loads)."""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest

__all__ = ["client_ip"]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if address is None:
        return False
    networks = _networks(tuple(getattr(settings, "NEPHELE_TRUSTED_PROXIES", ())))
    return any(address.version == n.version and address in n for n in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or, when that is one of ``NEPHELE_TRUSTED_PROXIES``
    (addresses or CIDRs of the reverse proxies in front of Nephele), the nearest address in
    ``X-Forwarded-For`` that is not a trusted proxy. Entries a client wrote itself sit to the left
    of what the trusted proxies appended, so they are never believed; an unparsable entry ends
    the walk at the last proxy that vouched for it. Audit records, the login throttle and the
    API rate limit all key on this address."""
    remote = request.META.get("REMOTE_ADDR") or None
    address = _address(remote) if remote else None
    if not _trusted(address):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")[-32:] if forwarded else []):
        hop = _address(entry)
        if hop is None:
            break
        address = hop
        if not _trusted(hop):
            break
    return str(address)
