"""Storage pool drivers: ``dir`` for real on the local libvirtd (qemu:///system); the LVM, NFS and
Ceph pool XML parsed back (this kernel has no device-mapper, and there is no NFS server or Ceph
cluster here to start such pools against)."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.drivers.base import (
    DriverError,
    InvalidPoolSpec,
    PoolNotFound,
    PoolSpec,
    PoolState,
    PoolType,
    PoolUnreachable,
    VolumeSpec,
)
from storage.drivers.libvirt import LibvirtPoolDriver, parse_monitors
from storage.drivers.registry import driver_class, get_driver, names

SYSTEM = "qemu:///system"


def _libvirtd() -> bool:
    try:
        LibvirtPoolDriver(SYSTEM)._connection()
    except DriverError:
        return False
    return True


@pytest.fixture
def pools() -> Iterator[tuple[LibvirtPoolDriver, list[str]]]:
    """A driver on the real daemon and a list of pool names to undefine afterwards, whatever happens."""
    if not _libvirtd():
        pytest.skip("qemu:///system is not reachable (bash scripts/start-libvirtd.sh)")
    drv = LibvirtPoolDriver(SYSTEM)
    created: list[str] = []
    yield drv, created
    for name in created:
        drv.undefine_pool(name)
    drv.close()


def _name(created: list[str]) -> str:
    name = f"ntest{os.getpid()}-pool-{uuid.uuid4().hex[:8]}"
    created.append(name)
    return name


@pytest.mark.integration
def test_dir_pool_is_defined_built_started_and_idempotent(
    pools: tuple[LibvirtPoolDriver, list[str]], tmp_path: Path
) -> None:
    drv, created = pools
    target = tmp_path / "ds" / "images"
    spec = PoolSpec(_name(created), PoolType.DIR, str(target))

    info = drv.ensure_pool(spec)
    again = drv.ensure_pool(spec)

    assert target.is_dir()  # built: libvirt made the directory
    assert info.state is PoolState.RUNNING and again.state is PoolState.RUNNING
    assert info.capacity_bytes > 0 and 0 < info.available_bytes <= info.capacity_bytes
    conn = drv._connection()
    pool = conn.storagePoolLookupByName(spec.name)
    assert pool.isActive() and pool.autostart()
    assert len([p for p in conn.listAllStoragePools() if p.name() == spec.name]) == 1


@pytest.mark.integration
def test_dir_pool_refresh_sees_new_files_and_redefines_on_path_change(
    pools: tuple[LibvirtPoolDriver, list[str]], tmp_path: Path
) -> None:
    drv, created = pools
    spec = PoolSpec(_name(created), PoolType.DIR, str(tmp_path / "a"))
    drv.ensure_pool(spec)
    (tmp_path / "a" / "disk.raw").write_bytes(b"\0" * 4096)

    drv.refresh_pool(spec.name)
    vols = drv._connection().storagePoolLookupByName(spec.name).listVolumes()
    assert vols == ["disk.raw"]

    moved = PoolSpec(spec.name, PoolType.DIR, str(tmp_path / "b"))
    drv.ensure_pool(moved)
    xml = ET.fromstring(drv._connection().storagePoolLookupByName(spec.name).XMLDesc(0))
    assert xml.findtext("target/path") == str(tmp_path / "b")
    assert drv.pool_info(spec.name).state is PoolState.RUNNING


@pytest.mark.integration
def test_undefine_keeps_the_files_and_is_idempotent(pools: tuple[LibvirtPoolDriver, list[str]], tmp_path: Path) -> None:
    drv, created = pools
    spec = PoolSpec(_name(created), PoolType.DIR, str(tmp_path / "keep"))
    drv.ensure_pool(spec)
    (tmp_path / "keep" / "x.qcow2").write_bytes(b"data")

    drv.undefine_pool(spec.name)
    drv.undefine_pool(spec.name)

    assert (tmp_path / "keep" / "x.qcow2").read_bytes() == b"data"
    with pytest.raises(PoolNotFound):
        drv.pool_info(spec.name)
    with pytest.raises(PoolNotFound):
        drv.refresh_pool(spec.name)


@pytest.mark.integration
def test_logical_pool_without_lvm_fails_with_libvirts_message(pools: tuple[LibvirtPoolDriver, list[str]]) -> None:
    drv, created = pools
    spec = PoolSpec(_name(created), PoolType.LOGICAL, "/dev/novg", {"vg": "novg"})
    with pytest.raises(DriverError) as err:
        drv.ensure_pool(spec)
    assert spec.name in str(err.value) and not isinstance(err.value, PoolUnreachable)


def test_unreachable_daemon_is_pool_unreachable() -> None:
    drv = LibvirtPoolDriver("qemu:///system?socket=/nonexistent/libvirt-sock")
    with pytest.raises(PoolUnreachable, match="nonexistent"):
        drv.pool_info("anything")
    with pytest.raises(PoolUnreachable):
        drv.ensure_pool(PoolSpec("p", PoolType.DIR, "/tmp/p"))


def test_registry() -> None:
    assert names() == ["libvirt"]
    assert driver_class("libvirt") is LibvirtPoolDriver
    assert isinstance(get_driver("test:///default"), LibvirtPoolDriver)
    with pytest.raises(DriverError, match="unknown storage driver"):
        driver_class("nope")


# ------------------------------------------------------------------ XML of the other pool types
def _xml(spec: PoolSpec) -> ET.Element:
    return ET.fromstring(LibvirtPoolDriver(SYSTEM).pool_xml(spec))


def test_dir_xml() -> None:
    x = _xml(PoolSpec("p1", PoolType.DIR, "/var/lib/nephele/ds/1"))
    assert x.get("type") == "dir" and x.findtext("name") == "p1"
    assert x.findtext("target/path") == "/var/lib/nephele/ds/1" and x.find("source") is None


def test_logical_xml_names_the_volume_group_and_devices() -> None:
    x = _xml(
        PoolSpec("vg", PoolType.LOGICAL, "/dev/vg_nephele", {"vg": "vg_nephele", "devices": ["/dev/sdb", "/dev/sdc"]})
    )
    assert x.get("type") == "logical"
    assert x.findtext("source/name") == "vg_nephele"
    assert [d.get("path") for d in x.findall("source/device")] == ["/dev/sdb", "/dev/sdc"]
    assert x.find("source/format").get("type") == "lvm2"
    assert x.findtext("target/path") == "/dev/vg_nephele"


def test_netfs_xml_has_host_export_and_format() -> None:
    x = _xml(
        PoolSpec(
            "nfs",
            PoolType.NETFS,
            "/var/lib/nephele/nfs",
            {"host": "nfs.example", "dir": "/export/vms", "protocol": "4"},
        )
    )
    assert x.get("type") == "netfs"
    assert x.find("source/host").get("name") == "nfs.example"
    assert x.find("source/dir").get("path") == "/export/vms"
    assert x.find("source/format").get("type") == "nfs"
    assert x.find("source/protocol").get("ver") == "4"
    assert x.findtext("target/path") == "/var/lib/nephele/nfs"


def test_rbd_xml_has_pool_monitors_and_cephx_auth() -> None:
    secret = str(uuid.uuid4())
    x = _xml(PoolSpec("ceph", PoolType.RBD, "", {"pool": "vms", "monitors": ["mon1", "10.0.0.2:6790", "[fd00::3]:3300"],
                                                  "auth_username": "libvirt", "secret_uuid": secret}))  # fmt: skip
    assert x.get("type") == "rbd" and x.find("target") is None
    assert x.findtext("source/name") == "vms"
    assert [(h.get("name"), h.get("port")) for h in x.findall("source/host")] == [
        ("mon1", "6789"), ("10.0.0.2", "6790"), ("fd00::3", "3300")
    ]  # fmt: skip
    auth = x.find("source/auth")
    assert auth.get("type") == "ceph" and auth.get("username") == "libvirt"
    assert auth.find("secret").get("uuid") == secret


def test_xml_is_escaped_not_formatted() -> None:
    x = _xml(PoolSpec('p"<x>', PoolType.NETFS, "/mnt/a", {"host": 'h"><evil/>', "dir": "/e"}))
    assert x.findtext("name") == 'p"<x>' and x.find("source/host").get("name") == 'h"><evil/>'
    assert x.find(".//evil") is None


@pytest.mark.parametrize(
    "spec,message",
    [
        (PoolSpec("p", PoolType.LOGICAL, "/dev/x", {}), "source.vg"),
        (PoolSpec("p", PoolType.LOGICAL, "/dev/x", {"vg": "x", "devices": ["sdb"]}), "source.devices"),
        (PoolSpec("p", PoolType.NETFS, "/mnt", {"host": "h"}), "source.dir"),
        (PoolSpec("p", PoolType.NETFS, "/mnt", {"dir": "/e"}), "source.host"),
        (PoolSpec("p", PoolType.NETFS, "/mnt", {"host": "h", "dir": "e"}), "absolute export"),
        (PoolSpec("p", PoolType.RBD, "", {"monitors": ["m"]}), "source.pool"),
        (PoolSpec("p", PoolType.RBD, "", {"pool": "x"}), "monitor"),
        (PoolSpec("p", PoolType.RBD, "", {"pool": "x", "monitors": ["m"], "auth_username": "u"}), "secret_uuid"),
        (PoolSpec("p", PoolType.DIR, "relative/path"), "absolute target"),
    ],
)
def test_missing_settings_are_refused(spec: PoolSpec, message: str) -> None:
    with pytest.raises(InvalidPoolSpec, match=message):
        LibvirtPoolDriver(SYSTEM).pool_xml(spec)


def test_parse_monitors() -> None:
    assert parse_monitors("a, b:1") == [("a", 6789), ("b", 1)]
    for bad in ([], "", ["a:0"], ["a:99999"], ["a:x"], [":6789"]):
        with pytest.raises(InvalidPoolSpec):
            parse_monitors(bad)


# ------------------------------------------------------------------ volumes
@pytest.mark.integration
def test_volumes_in_a_dir_pool_are_real_files(pools: tuple[LibvirtPoolDriver, list[str]], tmp_path: Path) -> None:
    import json
    import subprocess

    drv, created = pools
    pool = PoolSpec(_name(created), PoolType.DIR, str(tmp_path / "vols"))
    drv.ensure_pool(pool)

    vol = drv.create_volume(pool, VolumeSpec("data.qcow2", 64 * 1024**2, "qcow2"))
    again = drv.create_volume(pool, VolumeSpec("data.qcow2", 64 * 1024**2, "qcow2"))

    assert vol.path == again.path == str(tmp_path / "vols" / "data.qcow2")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", vol.path], check=True,
                                     capture_output=True, text=True).stdout)  # fmt: skip
    assert (info["format"], info["virtual-size"]) == ("qcow2", 64 * 1024**2)
    drv.delete_volume(pool.name, "data.qcow2")
    drv.delete_volume(pool.name, "data.qcow2")
    assert not (tmp_path / "vols" / "data.qcow2").exists()


def test_volume_xml_per_pool_type() -> None:
    drv = LibvirtPoolDriver(SYSTEM)
    f = ET.fromstring(drv.volume_xml(PoolType.NETFS, VolumeSpec("d.qcow2", 1024, "qcow2")))
    assert (f.get("type"), f.findtext("name"), f.findtext("capacity"), f.find("target/format").get("type")) == (
        "file", "d.qcow2", "1024", "qcow2"
    )  # fmt: skip
    assert f.findtext("allocation") == "0"  # sparse
    lv = ET.fromstring(drv.volume_xml(PoolType.LOGICAL, VolumeSpec("lv-1", 4096)))
    assert (lv.get("type"), lv.findtext("capacity"), lv.findtext("allocation"), lv.find("target")) == (
        "block", "4096", "4096", None
    )  # fmt: skip
    rbd = ET.fromstring(drv.volume_xml(PoolType.RBD, VolumeSpec("img-1", 2048)))
    assert (rbd.get("type"), rbd.find("target/format").get("type")) == ("network", "raw")
    assert rbd.find("capacity").get("unit") == "bytes"


@pytest.mark.parametrize(
    "ptype,spec,message",
    [
        (PoolType.LOGICAL, VolumeSpec("lv", 10, "qcow2"), "raw"),
        (PoolType.RBD, VolumeSpec("i", 10, "qcow2"), "raw"),
        (PoolType.DIR, VolumeSpec("x", 10, "vmdk"), "raw or qcow2"),
        (PoolType.DIR, VolumeSpec("../etc/passwd", 10), "plain name"),
        (PoolType.DIR, VolumeSpec("x", 0), "positive"),
    ],
)
def test_bad_volumes_are_refused(ptype: PoolType, spec: VolumeSpec, message: str) -> None:
    with pytest.raises(InvalidPoolSpec, match=message):
        LibvirtPoolDriver(SYSTEM).volume_xml(ptype, spec)
