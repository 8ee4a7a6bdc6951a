"""A compute driver over libvirt, for any libvirt URI (qemu:///system, qemu+ssh://…, test:///…).

Domain XML is built with ElementTree, so any user-supplied text (the VM's title) is escaped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import libvirt

from .base import (
    ComputeDriver,
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
    Unsupported,
)

T = TypeVar("T")

_POWER = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PMSUSPENDED,
}
_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN: "unknown",
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "saved",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed",
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "from-snapshot",
}
_LIFECYCLE = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
}
_event_loop_lock = threading.Lock()
_event_loop_started = False


def _ensure_event_loop() -> None:
    """libvirt's default event loop in a daemon thread; must exist before connections open."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


METADATA_NS = "https://nephele.example/xmlns/domain/1.0"
DETACH_TIMEOUT_S = 30.0

# libvirt prints every error on stderr by default; our callers get them as exceptions instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _total(stats: dict[str, Any], prefix: str, field: str) -> int:
    """Sum a per-device counter of getAllDomainStats (net.0.rx.bytes + net.1.rx.bytes …)."""
    return sum(int(stats.get(f"{prefix}.{i}.{field}", 0)) for i in range(int(stats.get(f"{prefix}.count", 0))))


def _disk_xml(devices: ET.Element | None, disk: DiskSpec) -> ET.Element:
    """A <disk> element (storage manager's part of the domain), appended to ``devices`` if given."""
    attrs = {"type": "file", "device": disk.device}
    el = ET.Element("disk", attrs) if devices is None else ET.SubElement(devices, "disk", attrs)
    ET.SubElement(el, "driver", {"name": "qemu", "type": disk.format})
    ET.SubElement(el, "source", {"file": disk.path})
    ET.SubElement(el, "target", {"dev": disk.target, "bus": disk.bus})
    if disk.readonly or disk.device == "cdrom":
        ET.SubElement(el, "readonly")
    if disk.serial:
        ET.SubElement(el, "serial").text = disk.serial
    return el


def _nic_xml(devices: ET.Element, nic: NicSpec, domain_type: str) -> None:
    """An <interface> element on a host bridge (network manager's part of the domain)."""
    devices.append(_nic_element(nic))


def _nic_element(nic: NicSpec) -> ET.Element:
    """The <interface> of ``nic``: bridge, MAC, tap name, model, MTU and bandwidth limits."""
    el = ET.Element("interface", {"type": "bridge"})
    ET.SubElement(el, "mac", {"address": nic.mac})
    ET.SubElement(el, "source", {"bridge": nic.bridge})
    if nic.tap:
        ET.SubElement(el, "target", {"dev": nic.tap})
    ET.SubElement(el, "model", {"type": nic.model})
    if nic.mtu:
        ET.SubElement(el, "mtu", {"size": str(nic.mtu)})
    if nic.average_kbps or nic.peak_kbps or nic.burst_kb:
        bw = ET.SubElement(el, "bandwidth")
        attrs = {"average": str(nic.average_kbps or nic.peak_kbps)}
        if nic.peak_kbps:
            attrs["peak"] = str(nic.peak_kbps)
        if nic.burst_kb:
            attrs["burst"] = str(nic.burst_kb)
        ET.SubElement(bw, "inbound", attrs)
        ET.SubElement(bw, "outbound", attrs)
    return el


def build_domain_xml(spec: DomainSpec, domain_type: str) -> str:
    """The libvirt domain XML for ``spec``; every text goes through ElementTree's escaping."""
    dom = ET.Element("domain", {"type": domain_type})
    ET.SubElement(dom, "name").text = spec.name
    ET.SubElement(dom, "uuid").text = spec.uuid
    ET.SubElement(dom, "title").text = spec.title
    if spec.metadata:
        meta = ET.SubElement(dom, "metadata")
        nmeta = ET.SubElement(meta, f"{{{METADATA_NS}}}instance")
        for key, value in sorted(spec.metadata.items()):
            ET.SubElement(nmeta, f"{{{METADATA_NS}}}{key}").text = value
    ET.SubElement(dom, "memory", {"unit": "MiB"}).text = str(spec.memory_mb)
    ET.SubElement(dom, "vcpu").text = str(spec.vcpu)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64"}).text = "hvm"
    if spec.kernel:
        ET.SubElement(os_el, "kernel").text = spec.kernel
        if spec.initrd:
            ET.SubElement(os_el, "initrd").text = spec.initrd
        if spec.cmdline:
            ET.SubElement(os_el, "cmdline").text = spec.cmdline
    else:
        ET.SubElement(os_el, "boot", {"dev": "hd"})
    if domain_type != "test":
        features = ET.SubElement(dom, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(dom, "on_poweroff").text = "destroy"
        ET.SubElement(dom, "on_reboot").text = "restart"
        ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    if spec.disk_path:
        disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
        ET.SubElement(disk, "driver", {"name": "qemu", "type": spec.disk_format})
        ET.SubElement(disk, "source", {"file": spec.disk_path})
        ET.SubElement(disk, "target", {"dev": "vda", "bus": "virtio"})
    for disk_spec in spec.disks:
        _disk_xml(devices, disk_spec)
    for nic in spec.nics:
        _nic_xml(devices, nic, domain_type)
    if spec.serial_log and domain_type != "test":
        # a pty, so the portal's console can attach to it (virDomainOpenConsole); QEMU also
        # writes everything the guest prints to the log (append: libvirt truncates the log at
        # every boot otherwise, and the console history is the user's)
        serial = ET.SubElement(devices, "serial", {"type": "pty"})
        ET.SubElement(serial, "log", {"file": spec.serial_log, "append": "on"})
        ET.SubElement(serial, "target", {"port": "0"})
        console = ET.SubElement(devices, "console", {"type": "pty"})
        ET.SubElement(console, "target", {"type": "serial", "port": "0"})
    if spec.graphics and domain_type != "test":
        # VNC on the host's loopback (or the management address the operator configured),
        # never a public address: the portal's websocket proxy is the only way in
        gfx = ET.SubElement(devices, "graphics", {"type": "vnc", "autoport": "yes", "listen": spec.graphics_listen})
        ET.SubElement(gfx, "listen", {"type": "address", "address": spec.graphics_listen})
        video = ET.SubElement(devices, "video")
        ET.SubElement(video, "model", {"type": "vga"})
    if domain_type != "test":
        ET.SubElement(devices, "memballoon", {"model": "none"})
    ET.register_namespace("nephele", METADATA_NS)
    return ET.tostring(dom, encoding="unicode")


class LibvirtComputeDriver(ComputeDriver):
    """One libvirt connection, reopened when it drops."""

    name = "libvirt"

    @classmethod
    def capabilities_for(cls, uri: str) -> Mapping[str, bool]:
        is_test = uri.startswith("test:")
        return {
            "save_restore": True,
            "suspend": True,
            "acpi_shutdown": True,
            "cold_migrate": True,
            # libvirt's test driver has no migration; QEMU hosts migrate live over libvirt.
            "live_migrate": not is_test,
            # the test driver has no device hotplug (virDomainAttachDeviceFlags is unsupported)
            "hotplug_disk": not is_test,
            "hotplug_nic": not is_test,
            # consoles (compute/drivers/console.py): QEMU's pty and VNC; a simulated host's
            # serial console is a terminal that echoes
            "console_serial": True,
            "console_vnc": not is_test,
        }

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.RLock()
        self._watchers: list[Callable[[str, str], None]] = []
        _ensure_event_loop()
        self._last_cpu: tuple[int, int] | None = None
        self.is_test = uri.startswith("test:")
        self.domain_type = "test" if self.is_test else os.environ.get("NEPHELE_VIRT_TYPE", "qemu")
        self.capabilities = self.capabilities_for(uri)

    # -- connection -------------------------------------------------------------------------
    def _connection(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise HostUnreachable(f"cannot connect to {self.uri}: {exc.get_error_message()}") from exc
            if self._watchers:
                self._subscribe(self._conn)
            return self._conn

    def watch(self, callback: Callable[[str, str], None]) -> None:
        """Lifecycle events of every domain on this host, as (domain name, event) calls."""
        with self._lock:
            if callback in self._watchers:
                return
            self._watchers.append(callback)
            if len(self._watchers) == 1 and self._conn is not None:
                self._subscribe(self._conn)

    def _subscribe(self, conn: libvirt.virConnect) -> None:
        def on_event(_conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
            for cb in list(self._watchers):
                cb(dom.name(), _LIFECYCLE.get(event, str(event)))

        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code == libvirt.VIR_ERR_NO_DOMAIN:
                raise DomainNotFound(exc.get_error_message()) from exc
            if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT):
                with self._lock:
                    self._conn = None
                raise HostUnreachable(exc.get_error_message()) from exc
            if code == libvirt.VIR_ERR_NO_SUPPORT:
                raise Unsupported(exc.get_error_message()) from exc
            raise DriverError(exc.get_error_message() or str(exc)) from exc

    def _domain(self, name: str) -> libvirt.virDomain:
        conn = self._connection()
        return self._call(lambda: conn.lookupByName(name))

    def _power(self, dom: libvirt.virDomain) -> PowerState:
        state, _reason = self._call(dom.state)
        return _POWER.get(state, PowerState.NOSTATE)

    # -- life cycle -------------------------------------------------------------------------
    def define(self, spec: DomainSpec) -> None:
        conn = self._connection()
        xml = build_domain_xml(spec, self.domain_type)
        self._call(lambda: conn.defineXML(xml))

    def start(self, name: str) -> None:
        dom = self._domain(name)
        if self._power(dom) in (PowerState.RUNNING, PowerState.BLOCKED):
            return
        if self._power(dom) == PowerState.PAUSED:
            self._call(dom.resume)
            return
        self._call(dom.create)

    def shutdown(self, name: str, timeout: float) -> bool:
        dom = self._domain(name)
        if self._power(dom) == PowerState.SHUTOFF:
            return True
        self._call(dom.shutdown)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._power(dom) == PowerState.SHUTOFF:
                    return True
            except DomainNotFound:
                return True
            time.sleep(0.5)
        return False

    def destroy(self, name: str) -> None:
        try:
            dom = self._domain(name)
        except DomainNotFound:
            return
        if self._power(dom) != PowerState.SHUTOFF:
            self._call(dom.destroy)

    def reboot(self, name: str, hard: bool = False) -> None:
        dom = self._domain(name)
        if hard:
            self._call(lambda: dom.reset(0))
        else:
            self._call(lambda: dom.reboot(0))

    def suspend(self, name: str) -> None:
        dom = self._domain(name)
        if self._power(dom) != PowerState.PAUSED:
            self._call(dom.suspend)

    def resume(self, name: str) -> None:
        dom = self._domain(name)
        if self._power(dom) == PowerState.PAUSED:
            self._call(dom.resume)

    def save(self, name: str, path: str) -> None:
        dom = self._domain(name)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._call(lambda: dom.save(path))

    def restore(self, path: str) -> None:
        conn = self._connection()
        self._call(lambda: conn.restore(path))

    def migrate(self, name: str, dest_uri: str, live: bool) -> None:
        if live and not self.capabilities["live_migrate"]:
            raise Unsupported(f"{self.uri} cannot migrate live")
        dom = self._domain(name)
        flags = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        if live:
            flags |= libvirt.VIR_MIGRATE_LIVE
        try:
            dest = libvirt.open(dest_uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(f"cannot connect to {dest_uri}: {exc.get_error_message()}") from exc
        try:
            self._call(lambda: dom.migrate(dest, flags, None, None, 0))
        finally:
            dest.close()

    def undefine(self, name: str) -> None:
        try:
            dom = self._domain(name)
        except DomainNotFound:
            return
        flags = 0 if self.is_test else libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        self._call(lambda: dom.undefineFlags(flags))

    # -- disks ------------------------------------------------------------------------------
    def _affect(self, dom: libvirt.virDomain, live: bool) -> int:
        flags = int(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if live and self._power(dom) in (PowerState.RUNNING, PowerState.BLOCKED, PowerState.PAUSED):
            flags |= int(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        return flags

    def attach_disk(self, name: str, disk: DiskSpec, live: bool) -> None:
        if live and not self.capabilities["hotplug_disk"]:
            raise Unsupported(f"{self.uri} cannot attach disks to running domains")
        dom = self._domain(name)
        if self._disk_element(dom, disk.target, live) is not None:
            return  # already there (a retried task)
        xml = ET.tostring(_disk_xml(None, disk), encoding="unicode")
        flags = self._affect(dom, live)
        self._call(lambda: dom.attachDeviceFlags(xml, flags))

    def detach_disk(self, name: str, target: str, live: bool) -> None:
        if live and not self.capabilities["hotplug_disk"]:
            raise Unsupported(f"{self.uri} cannot detach disks from running domains")
        dom = self._domain(name)
        el = self._disk_element(dom, target, live)
        if el is None:
            return
        xml = ET.tostring(el, encoding="unicode")
        flags = self._affect(dom, live)
        self._call(lambda: dom.detachDeviceFlags(xml, flags))
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            # the guest releases the device asynchronously: wait for it, so "detached" means gone
            deadline = time.monotonic() + DETACH_TIMEOUT_S
            while self._disk_element(dom, target, True) is not None:
                if time.monotonic() > deadline:
                    raise DriverError(f"the guest did not release {target} within {DETACH_TIMEOUT_S:.0f} s")
                time.sleep(0.5)

    # -- NICs -------------------------------------------------------------------------------
    def attach_nic(self, name: str, nic: NicSpec, live: bool) -> None:
        if live and not self.capabilities["hotplug_nic"]:
            raise Unsupported(f"{self.uri} cannot attach NICs to running domains")
        dom = self._domain(name)
        if self._nic_element_of(dom, nic.mac, live) is not None:
            return  # already there (a retried task)
        xml = ET.tostring(_nic_element(nic), encoding="unicode")
        flags = self._affect(dom, live)
        self._call(lambda: dom.attachDeviceFlags(xml, flags))

    def detach_nic(self, name: str, mac: str, live: bool) -> None:
        if live and not self.capabilities["hotplug_nic"]:
            raise Unsupported(f"{self.uri} cannot detach NICs from running domains")
        dom = self._domain(name)
        el = self._nic_element_of(dom, mac, live)
        if el is None:
            return
        xml = ET.tostring(el, encoding="unicode")
        self._call(lambda: dom.detachDeviceFlags(xml, self._affect(dom, live)))

    def _nic_element_of(self, dom: libvirt.virDomain, mac: str, live: bool) -> ET.Element | None:
        flags = 0 if live and self._power(dom) != PowerState.SHUTOFF else libvirt.VIR_DOMAIN_XML_INACTIVE
        root = ET.fromstring(self._call(lambda: dom.XMLDesc(flags)))
        for el in root.iterfind("./devices/interface"):
            m = el.find("mac")
            if m is not None and (m.get("address") or "").lower() == mac.lower():
                return el
        return None

    def resize_disk(self, name: str, target: str, size_bytes: int) -> None:
        dom = self._domain(name)
        self._call(lambda: dom.blockResize(target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES))

    def _disk_element(self, dom: libvirt.virDomain, target: str, live: bool) -> ET.Element | None:
        """The domain's <disk> at ``target`` (the live definition when ``live``, else the persistent one)."""
        flags = 0 if live and self._power(dom) != PowerState.SHUTOFF else libvirt.VIR_DOMAIN_XML_INACTIVE
        root = ET.fromstring(self._call(lambda: dom.XMLDesc(flags)))
        for el in root.iterfind("./devices/disk"):
            tgt = el.find("target")
            if tgt is not None and tgt.get("dev") == target:
                return el
        return None

    # -- observation ------------------------------------------------------------------------
    def _info(self, dom: libvirt.virDomain) -> DomainInfo:
        state, _max_mem, mem_kib, vcpus, cpu_time = self._call(dom.info)
        reason = ""
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            reason = _SHUTOFF_REASONS.get(self._call(dom.state)[1], "unknown")
        return DomainInfo(
            name=dom.name(),
            uuid=dom.UUIDString(),
            power_state=_POWER.get(state, PowerState.NOSTATE),
            vcpu=vcpus,
            memory_mb=mem_kib // 1024,
            cpu_time_ns=cpu_time,
            reason=reason,
        )

    def domain_stats(self) -> list[DomainStats]:
        conn = self._connection()
        flags = (
            libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
            | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK
        )  # fmt: skip
        rows = self._call(lambda: conn.getAllDomainStats(flags, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE))
        out = []
        for dom, st in rows:
            if "cpu.time" in st:
                cpu, vcpu, mem = int(st["cpu.time"]), int(st.get("vcpu.current", 1)), int(st.get("balloon.current", 0))
            else:  # drivers without stats (libvirt's test driver): what info() says
                _s, max_kib, mem, vcpu, cpu = self._call(dom.info)
                mem = mem or max_kib

            out.append(
                DomainStats(
                    name=dom.name(),
                    cpu_time_ns=cpu,
                    vcpu=vcpu,
                    memory_kb=mem,
                    rx_bytes=_total(st, "net", "rx.bytes"),
                    tx_bytes=_total(st, "net", "tx.bytes"),
                    rd_bytes=_total(st, "block", "rd.bytes"),
                    wr_bytes=_total(st, "block", "wr.bytes"),
                    rd_reqs=_total(st, "block", "rd.reqs"),
                    wr_reqs=_total(st, "block", "wr.reqs"),
                )  # fmt: skip
            )
        return out

    def get_info(self, name: str) -> DomainInfo:
        return self._info(self._domain(name))

    def list_domains(self) -> list[DomainInfo]:
        conn = self._connection()
        return [self._info(d) for d in self._call(lambda: conn.listAllDomains(0))]

    def host_info(self) -> HostInfo:
        conn = self._connection()
        model, memory_mb, cpus, _mhz, *_rest = self._call(conn.getInfo)
        free = self._call(conn.getFreeMemory) // (1024 * 1024)
        pools: list[Any] = self._call(lambda: conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE))
        disk_gb = sum(self._call(p.info)[1] for p in pools) // (1024**3)
        if not disk_gb and not self.is_test and self.uri.split("://", 1)[-1].startswith("/"):
            # A local daemon with no pool yet: the filesystem that will hold its images.
            disk_gb = shutil.disk_usage("/var/lib/libvirt" if os.path.isdir("/var/lib/libvirt") else "/").total // (
                1024**3
            )
        return HostInfo(
            hostname=self._call(conn.getHostname),
            hypervisor=self._call(conn.getType).lower(),
            vcpu=cpus,
            memory_mb=memory_mb,
            free_memory_mb=free if free else memory_mb,
            disk_gb=disk_gb,
            cpu_model=model,
            cpu_load=self._cpu_load(conn),
        )

    def _cpu_load(self, conn: libvirt.virConnect) -> float:
        """Busy fraction of the host's CPUs since the previous probe (0 on the first)."""
        if self.is_test:
            return 0.0
        try:
            stats = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
        except libvirt.libvirtError:
            return 0.0
        busy = int(stats.get("kernel", 0)) + int(stats.get("user", 0))
        total = busy + int(stats.get("idle", 0)) + int(stats.get("iowait", 0))
        last, self._last_cpu = self._last_cpu, (busy, total)
        if last is None or total <= last[1]:
            return 0.0
        return max(0.0, min(1.0, (busy - last[0]) / (total - last[1])))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None
