"""What the agent does on a host, as plain functions (no Celery, no Django): probe the host,
list its domains, remove domains. ``compute.agent.execute`` carries out the VM steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from compute.drivers.registry import forget, get_driver
from specs import DomainInfo, DomainStats, DriverError, HostInfo, HostUnreachable


def probe(
    driver: str, uri: str, watch: Callable[[str, str], None] | None = None
) -> tuple[HostInfo | None, list[DomainStats], str]:
    """The host's capacity and its domains' counters, or the error."""
    try:
        drv = get_driver(driver, uri)
        if watch is not None:
            drv.watch(watch)
        info = drv.host_info()
    except DriverError as exc:
        if isinstance(exc, HostUnreachable):
            forget(driver, uri)
        return None, [], str(exc)
    try:
        stats = drv.domain_stats()
    except DriverError:
        stats = []  # the figures are optional; the probe itself succeeded
    return info, stats, ""


def list_domains(driver: str, uri: str) -> tuple[list[DomainInfo] | None, str]:
    try:
        return get_driver(driver, uri).list_domains(), ""
    except DriverError as exc:
        return None, str(exc)


def remove_domains(driver: str, uri: str, names: Iterable[str]) -> dict[str, str]:
    """Destroy and undefine each domain (best effort; missing ones are fine)."""
    drv = get_driver(driver, uri)
    out: dict[str, str] = {}
    for name in names:
        try:
            drv.destroy(name)
            drv.undefine(name)
            out[name] = "ok"
        except DriverError as exc:
            out[name] = str(exc)
    return out
