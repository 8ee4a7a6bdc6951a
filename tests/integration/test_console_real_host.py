"""Consoles of a real guest: libvirtd + QEMU (TCG) running the tiny test guest
(scripts/build-test-guest.sh: its init prints a marker and runs a shell on ttyS0).

Through the API and the real websocket consumer (channels' communicator on the ASGI
application): the serial console shows what the guest prints and runs what is typed (the
shell computes ``$((6*7))``, so the answer is the guest's, not the terminal's echo); the VNC
proxy speaks RFB with QEMU's VNC server on the host's loopback and gets a framebuffer update.
The console log API returns the marker."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from tests.conftest import client_for, wait_for
from tests.integration.test_real_host import GUEST, _serial, real_host_ready  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def boot_tiny_guest(admin_user: Any, member: Any, project: Any, *, graphics: bool) -> VirtualMachine:
    """Register qemu:///system, create the tiny guest from a template, wait for its marker."""
    admin = client_for(admin_user)
    resp = admin.post(
        "/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    host_id = resp.json()["id"]
    wait_for(lambda: Host.objects.filter(pk=host_id, state="MONITORED").exists(), timeout=60)
    image = admin.post(
        "/api/v1/boot-images/",
        {
            "project": project.pk, "name": "tiny-guest", "kind": "kernel", "public": True,
            "kernel_path": str(GUEST / "vmlinuz"), "initrd_path": str(GUEST / "initrd.img"),
            "cmdline": "console=ttyS0 quiet nephele.marker=vm-{vm_name}",
        },
        format="json",
    )  # fmt: skip
    assert image.status_code == 201, image.content
    api = client_for(member)
    tpl = api.post(
        "/api/v1/templates/",
        {"project": project.pk, "name": "tiny", "vcpu": 1, "memory_mb": 256, "boot_image": image.json()["id"],
         "hypervisor": "qemu", "graphics": graphics},
        format="json",
    )  # fmt: skip
    assert tpl.status_code == 201, tpl.content
    assert tpl.json()["graphics"] is graphics
    created = api.post(
        "/api/v1/vms/", {"name": "console", "project": project.pk, "template": tpl.json()["id"]}, format="json"
    )
    assert created.status_code == 202, created.content
    pk = created.json()[0]["id"]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    wait_for(lambda: f"NEPHELE-MARKER vm-{pk}" in _serial(vm), timeout=180, interval=1)
    return vm


def terminate(member: Any, vm: VirtualMachine) -> None:
    client_for(member).post(f"/api/v1/vms/{vm.pk}/action/", {"action": "terminate", "hard": True}, format="json")
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state in (S.DONE, S.EPILOG_FAILURE), timeout=90)


def _ticket(member: Any, vm: VirtualMachine, kind: str) -> str:
    resp = client_for(member).post(f"/api/v1/vms/{vm.pk}/console/", {"kind": kind}, format="json")
    assert resp.status_code == 201, resp.content
    return str(resp.json()["url"])


def _communicator(url: str) -> WebsocketCommunicator:
    from portal.asgi import application

    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    return WebsocketCommunicator(application, url, headers=headers, subprotocols=["binary"])


async def _read_until(comm: WebsocketCommunicator, wanted: bytes, limit: int = 400) -> bytes:
    seen = b""
    for _ in range(limit):
        seen += await comm.receive_from(timeout=30)  # type: ignore[operator]
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted!r} not seen in {seen[-500:]!r}")


def test_serial_console_of_a_real_guest(
    real_host_ready: None,  # noqa: F811
    agent: Any,
    admin_user: Any,
    member: Any,
    project: Any,
    settings: Any,
) -> None:
    vm = boot_tiny_guest(admin_user, member, project, graphics=True)
    try:
        url = _ticket(member, vm, "serial")

        async def session() -> bytes:
            comm = _communicator(url)
            connected, code = await comm.connect(timeout=30)
            assert connected, code
            await comm.send_to(bytes_data=b"\r")  # a fresh prompt
            await _read_until(comm, b"nephele# ")
            await comm.send_to(bytes_data=b"echo NEPHELE-ECHO-$((6*7))\r")
            seen = await _read_until(comm, b"NEPHELE-ECHO-42")
            await comm.disconnect()
            return seen

        seen = async_to_sync(session)()
        assert b"NEPHELE-ECHO-42" in seen
        log = client_for(member).get(f"/api/v1/vms/{vm.pk}/console-log/")
        assert log.status_code == 200
        assert f"NEPHELE-MARKER vm-{vm.pk}".encode() in log.content
        assert b"NEPHELE-ECHO-42" in log.content  # the session's output is in the log too

        vnc_url = _ticket(member, vm, "vnc")

        async def vnc() -> int:
            comm = _communicator(vnc_url)
            connected, code = await comm.connect(timeout=30)
            assert connected, code
            message_type = await rfb_first_update(comm)
            await comm.disconnect()
            return message_type

        assert async_to_sync(vnc)() == 0  # FramebufferUpdate
    finally:
        terminate(member, vm)


class _Bytes:
    """RFB messages over websocket frames, which need not line up with them."""

    def __init__(self, comm: WebsocketCommunicator) -> None:
        self.comm, self.buf = comm, b""

    async def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += await self.comm.receive_from(timeout=30)  # type: ignore[operator]
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


async def rfb_first_update(comm: WebsocketCommunicator) -> int:
    """An RFB 3.8 client handshake without authentication (QEMU's VNC on the loopback has
    none: the proxy's token is the gate), then a full framebuffer update request; the type of
    the first server message that answers it (0 = FramebufferUpdate)."""
    rx = _Bytes(comm)
    version = await rx.take(12)
    assert version.startswith(b"RFB 003."), version
    await comm.send_to(bytes_data=b"RFB 003.008\n")
    (count,) = struct.unpack("!B", await rx.take(1))
    types = await rx.take(count)
    assert 1 in types, types  # None
    await comm.send_to(bytes_data=b"\x01")
    assert await rx.take(4) == b"\x00\x00\x00\x00"  # SecurityResult OK
    await comm.send_to(bytes_data=b"\x01")  # ClientInit: shared
    width, height = struct.unpack("!HH", await rx.take(4))
    await rx.take(16)  # pixel format
    (name_len,) = struct.unpack("!I", await rx.take(4))
    await rx.take(name_len)
    assert width > 0 and height > 0
    await comm.send_to(bytes_data=struct.pack("!BBHHHH", 3, 0, 0, 0, width, height))
    (message_type,) = struct.unpack("!B", await rx.take(1))
    return int(message_type)
