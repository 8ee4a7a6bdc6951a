"""Storage pools through libvirt: ``dir``, ``logical`` (LVM), ``netfs`` (NFS) and ``rbd`` (Ceph).

Pool XML is built with ElementTree; every ``libvirt.libvirtError`` becomes a ``DriverError``
subclass carrying libvirt's message. No Django here.
"""

from __future__ import annotations

import contextlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from typing import Any

import libvirt

from .base import (
    DriverError,
    InvalidPoolSpec,
    PoolInfo,
    PoolNotFound,
    PoolSpec,
    PoolState,
    PoolType,
    PoolUnreachable,
    StoragePoolDriver,
    VolumeInfo,
    VolumeSpec,
)

_STATES = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: PoolState.INACTIVE,
    libvirt.VIR_STORAGE_POOL_BUILDING: PoolState.BUILDING,
    libvirt.VIR_STORAGE_POOL_RUNNING: PoolState.RUNNING,
    libvirt.VIR_STORAGE_POOL_DEGRADED: PoolState.DEGRADED,
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: PoolState.INACCESSIBLE,
}
CEPH_MON_PORT = 6789
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions; no stderr noise


def parse_monitors(value: Any) -> list[tuple[str, int]]:
    """``["mon1", "mon2:6790", "[fd00::1]:6789"]`` or ``"mon1,mon2"`` → [(host, port)].

    Raises ``InvalidPoolSpec`` on an empty list, an empty host or a port outside 1..65535.
    """
    items: Sequence[Any] = value.split(",") if isinstance(value, str) else value or []
    out: list[tuple[str, int]] = []
    for raw in items:
        item = str(raw).strip()
        if not item:
            continue
        host, port = item, CEPH_MON_PORT
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                port = _port(rest[1:], item)
        elif item.count(":") == 1:
            host, _, p = item.partition(":")
            port = _port(p, item)
        if not host:
            raise InvalidPoolSpec(f"monitor {item!r} has no host")
        out.append((host, port))
    if not out:
        raise InvalidPoolSpec("monitors: at least one Ceph monitor (host or host:port) is needed")
    return out


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidPoolSpec(f"monitor {item!r}: the port must be a number from 1 to 65535")
    return int(text)


def _need(spec: PoolSpec, key: str) -> str:
    value = spec.source.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidPoolSpec(f"a {spec.type} pool needs source.{key}")
    return value.strip()


class LibvirtPoolDriver(StoragePoolDriver):
    """Storage pools on the libvirt daemon at ``uri`` (``qemu:///system``, ``qemu+ssh://…``)."""

    pool_types = frozenset(PoolType)

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- XML
    def pool_xml(self, spec: PoolSpec) -> str:
        """libvirt ``<pool>`` XML for ``spec``."""
        ptype = PoolType(spec.type)
        pool = ET.Element("pool", type=ptype.value)
        ET.SubElement(pool, "name").text = spec.name
        if ptype is PoolType.LOGICAL:
            self._logical_source(pool, spec)
        elif ptype is PoolType.NETFS:
            self._netfs_source(pool, spec)
        elif ptype is PoolType.RBD:
            self._rbd_source(pool, spec)
        if ptype is not PoolType.RBD:  # an RBD pool has no local target
            if not spec.target_path.startswith("/"):
                raise InvalidPoolSpec(f"a {ptype} pool needs an absolute target path, not {spec.target_path!r}")
            target = ET.SubElement(pool, "target")
            ET.SubElement(target, "path").text = spec.target_path
        return ET.tostring(pool, encoding="unicode")

    @staticmethod
    def _logical_source(pool: ET.Element, spec: PoolSpec) -> None:
        source = ET.SubElement(pool, "source")
        devices = spec.source.get("devices") or []
        if isinstance(devices, str):
            devices = [devices]
        for dev in devices:
            if not str(dev).startswith("/"):
                raise InvalidPoolSpec(f"source.devices: {dev!r} is not an absolute device path")
            ET.SubElement(source, "device", path=str(dev))
        ET.SubElement(source, "name").text = _need(spec, "vg")
        ET.SubElement(source, "format", type="lvm2")

    @staticmethod
    def _netfs_source(pool: ET.Element, spec: PoolSpec) -> None:
        source = ET.SubElement(pool, "source")
        ET.SubElement(source, "host", name=_need(spec, "host"))
        export = _need(spec, "dir")
        if not export.startswith("/"):
            raise InvalidPoolSpec(f"source.dir must be an absolute export path, not {export!r}")
        ET.SubElement(source, "dir", path=export)
        ET.SubElement(source, "format", type=str(spec.source.get("format") or "nfs"))
        if spec.source.get("protocol"):
            ET.SubElement(source, "protocol", ver=str(spec.source["protocol"]))

    @staticmethod
    def _rbd_source(pool: ET.Element, spec: PoolSpec) -> None:
        source = ET.SubElement(pool, "source")
        ET.SubElement(source, "name").text = _need(spec, "pool")
        for host, port in parse_monitors(spec.source.get("monitors")):
            ET.SubElement(source, "host", name=host, port=str(port))
        username = spec.source.get("auth_username")
        if username:
            auth = ET.SubElement(source, "auth", type="ceph", username=str(username))
            ET.SubElement(auth, "secret", uuid=_need(spec, "secret_uuid"))

    # ---------------------------------------------------------------- connection
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
                raise PoolUnreachable(f"{self.uri}: {exc.get_error_message()}") from None
            return self._conn

    def close(self) -> None:
        """Close the libvirt connection."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise PoolNotFound(f"{what}: {exc.get_error_message()}") from None
            raise DriverError(f"{what}: {exc.get_error_message()}") from None

    def _lookup(self, name: str) -> libvirt.virStoragePool | None:
        try:
            return self._connection().storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return None
            raise DriverError(f"pool {name}: {exc.get_error_message()}") from None

    @staticmethod
    def _info(name: str, pool: libvirt.virStoragePool) -> PoolInfo:
        state, capacity, allocation, available = pool.info()
        return PoolInfo(name, _STATES.get(state, PoolState.INACCESSIBLE), capacity, allocation, available)

    # ---------------------------------------------------------------- operations
    def ensure_pool(self, spec: PoolSpec) -> PoolInfo:
        """Define (or redefine when changed), build, start and autostart the pool. Idempotent.

        ``logical`` pools are built (pvcreate/vgcreate) only when ``source.devices`` is given,
        and never over existing data (``VIR_STORAGE_POOL_BUILD_NO_OVERWRITE``).
        """
        xml = self.pool_xml(spec)
        with self._errors(f"pool {spec.name}"):
            pool = self._lookup(spec.name)
            if pool is not None and not self._same(pool, xml):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
                pool = None
            if pool is None:
                pool = self._connection().storagePoolDefineXML(xml, 0)
            if not pool.isActive():
                ptype = PoolType(spec.type)
                if ptype in (PoolType.DIR, PoolType.NETFS):
                    pool.build(0)  # creates the target directory (a mount point for netfs)
                elif ptype is PoolType.LOGICAL and spec.source.get("devices"):
                    pool.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
                pool.create(0)
            if not pool.autostart():
                pool.setAutostart(1)
            return self._info(spec.name, pool)

    @staticmethod
    def _same(pool: libvirt.virStoragePool, xml: str) -> bool:
        """Whether the defined pool has the wanted type, source and target."""
        have = ET.fromstring(pool.XMLDesc(0))
        want = ET.fromstring(xml)
        if have.get("type") != want.get("type"):
            return False
        for path in ("target/path", "source/name", "source/host", "source/dir", "source/device"):
            w = want.find(path)
            if w is None:
                continue
            h = have.find(path)
            if h is None or (h.text or "").strip() != (w.text or "").strip() or h.attrib != w.attrib:
                return False
        return True

    def refresh_pool(self, name: str) -> PoolInfo:
        """Rescan the pool's volumes and return its fresh figures."""
        with self._errors(f"pool {name}"):
            pool = self._connection().storagePoolLookupByName(name)
            if pool.isActive():
                pool.refresh(0)
            return self._info(name, pool)

    def pool_info(self, name: str) -> PoolInfo:
        """The pool's figures as libvirt last measured them."""
        with self._errors(f"pool {name}"):
            return self._info(name, self._connection().storagePoolLookupByName(name))

    def undefine_pool(self, name: str) -> None:
        """Stop the pool and undefine it; its files, LVs or images stay. Idempotent."""
        with self._errors(f"pool {name}"):
            pool = self._lookup(name)
            if pool is None:
                return
            if pool.isActive():
                pool.destroy()
            pool.undefine()

    # ---------------------------------------------------------------- volumes
    def volume_xml(self, pool_type: PoolType, spec: VolumeSpec) -> str:
        """libvirt ``<volume>`` XML: a file with its format (dir, netfs), a block LV (logical,
        fully allocated), or a raw network image (rbd)."""
        ptype = PoolType(pool_type)
        if spec.capacity_bytes <= 0:
            raise InvalidPoolSpec(f"volume {spec.name}: the capacity must be positive")
        if "/" in spec.name or spec.name in ("", ".", ".."):
            raise InvalidPoolSpec(f"volume name {spec.name!r} must be a plain name")
        fmt = spec.format or "raw"
        if ptype in (PoolType.LOGICAL, PoolType.RBD) and fmt != "raw":
            raise InvalidPoolSpec(f"a {ptype} volume is raw, not {fmt}")
        if fmt not in ("raw", "qcow2"):
            raise InvalidPoolSpec(f"volume format must be raw or qcow2, not {fmt}")
        kind = {PoolType.LOGICAL: "block", PoolType.RBD: "network"}.get(ptype, "file")
        vol = ET.Element("volume", type=kind)
        ET.SubElement(vol, "name").text = spec.name
        ET.SubElement(vol, "capacity", unit="bytes").text = str(spec.capacity_bytes)
        allocation = spec.capacity_bytes if ptype is PoolType.LOGICAL else 0  # LVs are thick, the rest sparse
        ET.SubElement(vol, "allocation", unit="bytes").text = str(allocation)
        if ptype is not PoolType.LOGICAL:
            target = ET.SubElement(vol, "target")
            ET.SubElement(target, "format", type=fmt)
        return ET.tostring(vol, encoding="unicode")

    def create_volume(self, pool: PoolSpec, spec: VolumeSpec) -> VolumeInfo:
        """Create the volume in the running pool (``storageVolCreateXML``); idempotent by name."""
        xml = self.volume_xml(pool.type, spec)
        with self._errors(f"pool {pool.name}"):
            p = self._connection().storagePoolLookupByName(pool.name)
            try:
                vol = p.storageVolLookupByName(spec.name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                vol = p.createXML(xml, 0)
            _type, capacity, allocation = vol.info()
            return VolumeInfo(spec.name, vol.path(), capacity, allocation)

    def delete_volume(self, pool_name: str, name: str) -> None:
        """Delete the volume (its file, LV or RBD image). Idempotent."""
        with self._errors(f"pool {pool_name}"):
            p = self._connection().storagePoolLookupByName(pool_name)
            try:
                vol = p.storageVolLookupByName(name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return
                raise
            vol.delete(0)
