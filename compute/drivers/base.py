"""The compute driver contract.

Drivers take and return plain values and frozen dataclasses; they never import Django or
the ORM. They translate their library's errors into ``DriverError`` subclasses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping

from specs import (  # the driver contract's plain types, re-exported for drivers
    ContextSpec,
    DiskSpec,
    DomainInfo,
    DomainNotFound,
    DomainSpec,
    DomainStats,
    DriverError,
    HostInfo,
    HostUnreachable,
    NicSpec,
    PowerState,
    StepOrder,
    StepResult,
    Unsupported,
)

__all__ = [
    "ComputeDriver",
    "ContextSpec",
    "DiskSpec",
    "DomainInfo",
    "DomainNotFound",
    "DomainSpec",
    "DomainStats",
    "DriverError",
    "HostInfo",
    "HostUnreachable",
    "NicSpec",
    "PowerState",
    "StepOrder",
    "StepResult",
    "Unsupported",
]


class ComputeDriver(abc.ABC):
    """One connection to one host."""

    name: str = "abstract"
    #: what this driver can do: save_restore, live_migrate, cold_migrate, acpi_shutdown, suspend,
    #: console_serial, console_vnc (compute/drivers/console.py)
    capabilities: Mapping[str, bool] = {}

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @classmethod
    def capabilities_for(cls, uri: str) -> Mapping[str, bool]:
        """What a driver of this class can do on ``uri``, without connecting (services read it
        to refuse unsupported operations early)."""
        return cls.capabilities

    def supports(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability, False))

    @abc.abstractmethod
    def define(self, spec: DomainSpec) -> None:
        """Define (persist) the domain; defining an existing one updates it."""

    @abc.abstractmethod
    def start(self, name: str) -> None:
        """Boot a defined, shut-off domain. Starting a running domain is a no-op."""

    @abc.abstractmethod
    def shutdown(self, name: str, timeout: float) -> bool:
        """ACPI shutdown; True when the domain is off within ``timeout`` seconds."""

    @abc.abstractmethod
    def destroy(self, name: str) -> None:
        """Hard power-off. Destroying a shut-off or missing domain is a no-op."""

    @abc.abstractmethod
    def reboot(self, name: str, hard: bool = False) -> None:
        """Reboot (ACPI) or reset (hard)."""

    @abc.abstractmethod
    def suspend(self, name: str) -> None:
        """Pause the domain in memory."""

    @abc.abstractmethod
    def resume(self, name: str) -> None:
        """Unpause a paused domain."""

    def save(self, name: str, path: str) -> None:
        """Save the domain's memory to ``path`` and stop it."""
        raise Unsupported(f"{self.name} cannot save domains")

    def restore(self, path: str) -> None:
        """Restore a domain saved with ``save``."""
        raise Unsupported(f"{self.name} cannot restore domains")

    def migrate(self, name: str, dest_uri: str, live: bool) -> None:
        """Move the domain to another host of the same driver."""
        raise Unsupported(f"{self.name} cannot migrate domains")

    @abc.abstractmethod
    def undefine(self, name: str) -> None:
        """Remove the definition. Undefining a missing domain is a no-op."""

    def attach_disk(self, name: str, disk: DiskSpec, live: bool) -> None:
        """Add ``disk`` to the domain: to the running guest and its definition (``live``), or
        to the definition only. Capability ``hotplug_disk`` says whether ``live`` works."""
        raise Unsupported(f"{self.name} cannot attach disks")

    def detach_disk(self, name: str, target: str, live: bool) -> None:
        """Remove the disk at ``target`` (vdb …) from the domain; a missing one is a no-op."""
        raise Unsupported(f"{self.name} cannot detach disks")

    def attach_nic(self, name: str, nic: NicSpec, live: bool) -> None:
        """Add an interface to the domain (running guest too when ``live``; capability ``hotplug_nic``).
        Attaching one whose MAC is there already is a no-op."""
        raise Unsupported(f"{self.name} cannot attach NICs")

    def detach_nic(self, name: str, mac: str, live: bool) -> None:
        """Remove the interface with ``mac``; a missing one is a no-op."""
        raise Unsupported(f"{self.name} cannot detach NICs")

    def resize_disk(self, name: str, target: str, size_bytes: int) -> None:
        """Grow the disk at ``target`` of a running domain to ``size_bytes`` (the guest sees it)."""
        raise Unsupported(f"{self.name} cannot resize disks of running domains")

    @abc.abstractmethod
    def get_info(self, name: str) -> DomainInfo:
        """The domain's state; raises DomainNotFound."""

    @abc.abstractmethod
    def list_domains(self) -> list[DomainInfo]:
        """Every domain on the host, defined or running."""

    @abc.abstractmethod
    def host_info(self) -> HostInfo:
        """Capacity and load of the host."""

    def domain_stats(self) -> list[DomainStats]:
        """Counters of every running domain (empty when the driver has none)."""
        return []

    def watch(self, callback: Callable[[str, str], None]) -> None:  # noqa: B027 - optional capability
        """Call ``callback(domain_name, event)`` when a domain starts, stops or crashes."""

    def close(self) -> None:  # noqa: B027 - optional hook, most drivers hold nothing
        """Release the connection."""
