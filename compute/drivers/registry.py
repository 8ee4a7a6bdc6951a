"""Driver registry keyed by name, and a per-process cache of open connections.

The libvirt test driver keeps its state only as long as one connection lives, so an agent
keeps one driver instance per host URI for its whole life (the nova-compute pattern).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping

from .base import ComputeDriver, DriverError

_DRIVERS: dict[str, type[ComputeDriver]] = {}
_CACHE: dict[tuple[str, str], ComputeDriver] = {}
_LOCK = threading.Lock()


def register(name: str, cls: type[ComputeDriver]) -> None:
    _DRIVERS[name] = cls


def driver_class(name: str) -> type[ComputeDriver]:
    _load_builtin()
    try:
        return _DRIVERS[name]
    except KeyError:
        raise DriverError(f"unknown compute driver {name!r}; known: {', '.join(sorted(_DRIVERS))}") from None


def capabilities(name: str, uri: str) -> Mapping[str, bool]:
    """What driver ``name`` can do on ``uri``, read from its class: nothing is constructed or
    connected (no libvirt event loop starts in a web process)."""
    return driver_class(name).capabilities_for(uri)


def names() -> list[str]:
    _load_builtin()
    return sorted(_DRIVERS)


def get_driver(name: str, uri: str) -> ComputeDriver:
    """The cached driver for (name, uri), connecting on first use."""
    key = (name, uri)
    with _LOCK:
        drv = _CACHE.get(key)
        if drv is None:
            drv = driver_class(name)(uri)
            _CACHE[key] = drv
        return drv


def forget(name: str, uri: str) -> None:
    """Drop a cached connection (after the host became unreachable)."""
    with _LOCK:
        drv = _CACHE.pop((name, uri), None)
    if drv is not None:
        drv.close()


@atexit.register
def close_all() -> None:
    """Close every cached connection (before libvirt's module is torn down at exit)."""
    with _LOCK:
        drivers = list(_CACHE.values())
        _CACHE.clear()
    for drv in drivers:
        drv.close()


def _load_builtin() -> None:
    if "libvirt" not in _DRIVERS:
        from .libvirt import LibvirtComputeDriver

        register("libvirt", LibvirtComputeDriver)
