"""The compute driver contract.

Drivers take and return plain values and frozen dataclasses; they never import Django or
the ORM. They translate their library's errors into ``DriverError`` subclasses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ..context import ContextSpec


class DriverError(Exception):
    """A driver operation failed; the message is the hypervisor's own."""


class DomainNotFound(DriverError):
    """The domain does not exist on the host."""


class HostUnreachable(DriverError):
    """The host (or its hypervisor daemon) cannot be reached."""


class Unsupported(DriverError):
    """The driver cannot do this operation."""


class PowerState(StrEnum):
    """The hypervisor's view of a domain, kept beside our own state."""

    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # shutting down
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"
    NOSTATE = "nostate"


@dataclass(frozen=True)
class DiskSpec:
    """One disk or CD-ROM of a domain, and how the host prepares its file before boot.

    Owned by the storage manager (``storage/``): it builds these from the VM's image and
    volumes; the agent prepares them at PROLOG and releases them at EPILOG.
    """

    target: str  # guest device name: vda, vdb, sda (cdrom)
    path: str  # the file (or device) on the host
    format: str = "qcow2"  # raw, qcow2, ...
    device: str = "disk"  # disk | cdrom
    bus: str = "virtio"  # virtio | sata | scsi
    readonly: bool = False
    serial: str = ""  # shown to the guest (/dev/disk/by-id), e.g. the volume id
    # how the host makes ``path`` at PROLOG (storage.hostops; all empty: the file exists already)
    backing: str = ""  # a copy-on-write overlay on this file …
    backing_format: str = ""  # … of this format (pinned, never probed)
    copy_from: str = ""  # a full copy of this file
    create_size_bytes: int = 0  # an empty disk of this size, or the size an overlay / copy is grown to
    delete_on_release: bool = False  # removed at EPILOG when the VM is terminated (volatile)


@dataclass(frozen=True)
class NicSpec:
    """One network interface of a domain.

    Owned by the network manager (``network/``): it builds these from the VM's NICs.
    """

    mac: str
    bridge: str  # the host bridge of the virtual network
    tap: str = ""  # the tap device name on the host ('' lets libvirt choose)
    model: str = "virtio"
    mtu: int = 0
    # bandwidth in KiB/s (libvirt's unit) and KiB; 0 = unlimited
    average_kbps: int = 0
    peak_kbps: int = 0
    burst_kb: int = 0
    # the host-side plan (``network.drivers.base.PortPlan``: bridge, VNI, peers, filter rules),
    # built by ``network.vmnics``; None when the host has no network driver (simulated hosts)
    plan: object | None = None


@dataclass(frozen=True)
class DomainSpec:
    """Everything needed to define a domain."""

    name: str  # the hypervisor's name (nephele-<pk>)
    title: str  # the user's name, free text
    uuid: str
    vcpu: int
    memory_mb: int
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""
    disk_path: str = ""
    disk_format: str = "qcow2"
    serial_log: str = ""  # file receiving the serial console
    metadata: Mapping[str, str] = field(default_factory=dict)
    disks: tuple[DiskSpec, ...] = ()  # beyond ``disk_path``: image disks, volumes, the context CD-ROM
    nics: tuple[NicSpec, ...] = ()
    # the NoCloud seed (compute/context.py): the agent writes it to ``context_path`` at PROLOG;
    # ``disks`` carries it as the read-only CD-ROM
    context: ContextSpec | None = None
    context_path: str = ""


@dataclass(frozen=True)
class DomainInfo:
    """A domain as the hypervisor reports it."""

    name: str
    uuid: str
    power_state: PowerState
    vcpu: int
    memory_mb: int
    cpu_time_ns: int = 0
    # why it is in that state, for SHUTOFF: "shutdown" (the guest), "destroyed", "crashed", "failed", …
    reason: str = ""

    @property
    def crashed(self) -> bool:
        """Stopped without the guest shutting down, or reported crashed: restart material."""
        if self.power_state == PowerState.CRASHED:
            return True
        return self.power_state == PowerState.SHUTOFF and self.reason in ("crashed", "destroyed", "failed", "unknown")


@dataclass(frozen=True)
class DomainStats:
    """Cumulative counters of a running domain (rates are computed by the collector)."""

    name: str
    cpu_time_ns: int
    vcpu: int
    memory_kb: int
    rx_bytes: int = 0
    tx_bytes: int = 0
    rd_bytes: int = 0
    wr_bytes: int = 0
    rd_reqs: int = 0
    wr_reqs: int = 0


@dataclass(frozen=True)
class HostInfo:
    """A host's capacity and measured load."""

    hostname: str
    hypervisor: str
    vcpu: int
    memory_mb: int
    free_memory_mb: int
    disk_gb: int
    cpu_model: str = ""
    cpu_load: float = 0.0


class ComputeDriver(abc.ABC):
    """One connection to one host."""

    name: str = "abstract"
    #: what this driver can do: save_restore, live_migrate, cold_migrate, acpi_shutdown, suspend
    capabilities: Mapping[str, bool] = {}

    def __init__(self, uri: str) -> None:
        self.uri = uri

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
