"""Real BMC emulators on loopback for the power tests: ``sushy-tools``' Redfish emulator and a
``virtualbmc`` IPMI BMC, each driving a libvirt domain on qemu:///system (a tiny diskless QEMU
guest under TCG: it powers on, sits in the firmware, and powers off). Nothing is mocked."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest

from tests.conftest import wait_for

URI = "qemu:///system"
PREFIX = "nbmc-"
USER, PASSWORD = "admin", "s3cret-bmc"


@dataclass
class Domain:
    name: str
    uuid: str

    def active(self) -> bool:
        conn = libvirt.open(URI)
        try:
            return bool(conn.lookupByName(self.name).isActive())
        finally:
            conn.close()


def requires_qemu() -> None:
    try:
        libvirt.open(URI).close()
    except libvirt.libvirtError as exc:  # pragma: no cover - the machine has libvirtd running
        pytest.skip(f"no qemu:///system: {exc}")


def _domain_xml(name: str, uid: str) -> str:
    return textwrap.dedent(f"""\
        <domain type='qemu'>
          <name>{name}</name><uuid>{uid}</uuid>
          <memory unit='MiB'>32</memory><vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type></os>
          <devices><serial type='pty'/></devices>
        </domain>""")


@contextlib.contextmanager
def bmc_domain() -> Iterator[Domain]:
    """A shut-off domain named ``nbmc-…``, destroyed and undefined afterwards."""
    requires_qemu()
    uid = str(uuid.uuid4())
    name = PREFIX + uid[:8]
    conn = libvirt.open(URI)
    dom = conn.defineXML(_domain_xml(name, uid))
    try:
        yield Domain(name, uid)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()
        conn.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def redfish_emulator(domain: Domain, tmp: Path) -> Iterator[str]:
    """``sushy-emulator`` on a free loopback port, exposing only ``domain``, with basic auth."""
    import bcrypt
    import requests

    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    config = tmp / "emulator.conf"
    config.write_text(
        f"SUSHY_EMULATOR_ALLOWED_INSTANCES = [{domain.uuid!r}]\nSUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
    )
    port = free_port()
    log = (tmp / "sushy.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sushy_tools.emulator.main", "--interface", "127.0.0.1", "--port", str(port),
         "--libvirt-uri", URI, "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp / "sushy.log").read_text()
        try:
            return requests.get(base + "/redfish/v1/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=60)
        yield base
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def virtual_bmc(domain: Domain, tmp: Path) -> Iterator[str]:
    """A ``virtualbmc`` IPMI BMC (the class vbmcd runs per domain) on a free loopback UDP port."""
    port = free_port(socket.SOCK_DGRAM)
    code = (
        "from virtualbmc.vbmc import VirtualBMC; "
        f"VirtualBMC(username={USER!r}, password={PASSWORD!r}, port={port}, address='127.0.0.1', "
        f"domain_name={domain.name!r}, libvirt_uri={URI!r}).listen(timeout=5)"
    )
    log = (tmp / "vbmc.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        """Bound once our own bind of its UDP port fails (no IPMI client needed to tell)."""
        assert proc.poll() is None, (tmp / "vbmc.log").read_text()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False

    try:
        wait_for(up, timeout=60, interval=0.5)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()
