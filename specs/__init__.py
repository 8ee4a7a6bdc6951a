"""Plain values shared by the control plane, the drivers and the host agents (no Django).

This is the leaf every manager may import: the domain, disk and NIC specs that the storage
and network managers build and the compute drivers consume, what a hypervisor reports, the
driver error family, and the step order / step result that cross the agent boundary. Nothing
here imports Django, the ORM or another Nephele module, so an agent process can load it
without settings or database credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class ContextSpec:
    """What one VM's NoCloud seed carries."""

    instance_id: str
    hostname: str
    ssh_keys: tuple[str, ...] = ()
    network_config: Mapping[str, Any] = field(default_factory=dict)
    user_data: str = ""


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
    graphics: bool = False  # a VNC framebuffer (the portal's graphical console)
    graphics_listen: str = "127.0.0.1"  # where VNC listens on the host: loopback or a management address
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


@dataclass(frozen=True)
class StepOrder:
    """One driver step, in plain values (the agent needs no ORM to carry it out)."""

    vm_id: int
    seq: int
    operation: str
    step: str  # the VM's transient state, or RUNNING for a reboot
    driver: str
    uri: str
    domain: DomainSpec
    hard: bool = False
    live: bool = False
    restore_path: str = ""
    save_path: str = ""
    dest_driver: str = ""
    dest_uri: str = ""
    was_running: bool = True
    shutdown_timeout: float = 60.0


@dataclass(frozen=True)
class StepResult:
    """What an agent reports for one step."""

    ok: bool
    error: str = ""
    hv_state: str = ""
    saved_path: str = ""


@dataclass(frozen=True)
class VolumeOrder:
    """One volume operation in plain values (the agent needs no ORM to carry it out)."""

    volume_id: int
    seq: int
    operation: str  # storage.states.VolumeAction's value
    path: str
    format: str
    args: Mapping[str, Any] = field(default_factory=dict)
    driver: str = ""  # the attached VM's host, for hot operations
    uri: str = ""
    domain: str = ""
    disk: DiskSpec | None = None
