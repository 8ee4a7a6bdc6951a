"""The contract every compute driver honours, run against each registered driver kind.

Here: the libvirt driver on libvirt's test driver (a simulated host with its own capacity).
The real QEMU host runs the same driver in tests/integration.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from compute.drivers.base import ComputeDriver, DomainNotFound, DomainSpec, PowerState
from compute.drivers.libvirt import LibvirtComputeDriver, build_domain_xml
from compute.drivers.registry import driver_class, names
from compute.drivers.simulated import write_node


@pytest.fixture(params=["libvirt-test"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ComputeDriver]:
    uri = write_node(tmp_path, "node", vcpu=12, memory_mb=24576, disk_gb=300)
    drv = LibvirtComputeDriver(uri)
    yield drv
    drv.close()


def spec(name: str = "nephele-1", title: str = "vm") -> DomainSpec:
    return DomainSpec(name=name, title=title, uuid=str(uuid.uuid4()), vcpu=2, memory_mb=512)


def test_registry_knows_libvirt() -> None:
    assert "libvirt" in names()
    assert driver_class("libvirt") is LibvirtComputeDriver


def test_host_info_reports_the_simulated_capacity(driver: ComputeDriver) -> None:
    info = driver.host_info()
    assert (info.vcpu, info.memory_mb, info.disk_gb) == (12, 24576, 300)


def test_life_cycle(driver: ComputeDriver, tmp_path: Path) -> None:
    driver.define(spec())
    assert driver.get_info("nephele-1").power_state == PowerState.SHUTOFF
    driver.start("nephele-1")
    driver.start("nephele-1")  # idempotent
    assert driver.get_info("nephele-1").power_state == PowerState.RUNNING
    driver.suspend("nephele-1")
    assert driver.get_info("nephele-1").power_state == PowerState.PAUSED
    driver.resume("nephele-1")
    driver.reboot("nephele-1")
    assert driver.shutdown("nephele-1", timeout=5)
    assert driver.get_info("nephele-1").power_state == PowerState.SHUTOFF
    driver.start("nephele-1")
    if driver.supports("save_restore"):
        driver.save("nephele-1", str(tmp_path / "s.save"))
        assert driver.get_info("nephele-1").power_state == PowerState.SHUTOFF
        driver.restore(str(tmp_path / "s.save"))
        assert driver.get_info("nephele-1").power_state == PowerState.RUNNING
    driver.destroy("nephele-1")
    driver.destroy("nephele-1")  # idempotent
    driver.undefine("nephele-1")
    driver.undefine("nephele-1")  # idempotent
    with pytest.raises(DomainNotFound):
        driver.get_info("nephele-1")
    assert driver.list_domains() == []


def test_hostile_names_do_not_break_the_xml(driver: ComputeDriver) -> None:
    title = "a'b<c>&\"d"
    xml = build_domain_xml(spec(title=title), "test")
    assert ET.fromstring(xml).findtext("title") == title
    driver.define(spec(title=title))
    driver.start("nephele-1")
    assert driver.get_info("nephele-1").power_state == PowerState.RUNNING


def test_kernel_boot_xml_for_qemu() -> None:
    s = DomainSpec(
        name="nephele-2", title="t", uuid=str(uuid.uuid4()), vcpu=1, memory_mb=256,
        kernel="/k", initrd="/i", cmdline="console=ttyS0 x=<y>", serial_log="/tmp/c.log",
    )  # fmt: skip
    root = ET.fromstring(build_domain_xml(s, "qemu"))
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == "/k" and root.findtext("os/cmdline") == "console=ttyS0 x=<y>"
    # a pty the console proxy attaches to, logged to the file (appended across boots)
    serial = root.find("devices/serial")
    assert serial is not None and serial.get("type") == "pty"
    assert serial.find("log").get("file") == "/tmp/c.log" and serial.find("log").get("append") == "on"
    assert root.find("devices/console").get("type") == "pty"
    assert root.find("devices/graphics") is None  # no screen unless the template asks for one


def test_graphics_listen_on_the_configured_address_only() -> None:
    s = DomainSpec(name="nephele-3", title="t", uuid=str(uuid.uuid4()), vcpu=1, memory_mb=256, graphics=True,
                   graphics_listen="10.0.0.5")  # fmt: skip
    gfx = ET.fromstring(build_domain_xml(s, "qemu")).find("devices/graphics")
    assert gfx is not None and gfx.get("type") == "vnc" and gfx.get("autoport") == "yes"
    assert gfx.get("listen") == "10.0.0.5" and gfx.find("listen").get("address") == "10.0.0.5"
    assert ET.fromstring(build_domain_xml(s, "test")).find("devices/graphics") is None


def test_live_migration_capability_is_declared(driver: ComputeDriver) -> None:
    assert driver.supports("live_migrate") is False  # libvirt's test driver cannot migrate
    assert LibvirtComputeDriver("qemu:///system").supports("live_migrate") is True
