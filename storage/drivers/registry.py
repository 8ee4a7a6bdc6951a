"""Storage pool drivers by name (Libcloud's registry pattern). One backend today: libvirt."""

from __future__ import annotations

from .base import DriverError, StoragePoolDriver

_DRIVERS: dict[str, type[StoragePoolDriver]] = {}


def register(name: str, cls: type[StoragePoolDriver]) -> None:
    """Make ``cls`` available as ``name``."""
    _DRIVERS[name] = cls


def driver_class(name: str) -> type[StoragePoolDriver]:
    """The driver class registered as ``name``."""
    _load_builtin()
    try:
        return _DRIVERS[name]
    except KeyError:
        raise DriverError(f"unknown storage driver {name!r}; known: {', '.join(sorted(_DRIVERS))}") from None


def names() -> list[str]:
    """Registered driver names."""
    _load_builtin()
    return sorted(_DRIVERS)


def get_driver(uri: str, name: str = "libvirt") -> StoragePoolDriver:
    """A new driver for the daemon at ``uri`` (the caller closes it; pool work is infrequent)."""
    return driver_class(name)(uri)  # type: ignore[call-arg]


def _load_builtin() -> None:
    if "libvirt" not in _DRIVERS:
        from .libvirt import LibvirtPoolDriver

        register("libvirt", LibvirtPoolDriver)
