"""Live updates: a member's websocket receives the re-rendered row of their project's VMs, and
nothing of other projects; anonymous sockets are refused."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from compute import services
from tests.factories import ProjectFactory, VMTemplateFactory


def _headers(user: Any | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        c = Client()
        c.force_login(user)
        headers.append((b"cookie", f"sessionid={c.cookies['sessionid'].value}".encode()))
    return headers


def _communicator(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    from portal.asgi import application

    return WebsocketCommunicator(application, "/ws/live/", headers=headers)


@pytest.mark.django_db(transaction=True)
def test_member_receives_own_project_rows_only(member: Any, project: Any, template: Any) -> None:
    other_project = ProjectFactory()
    other_tpl = VMTemplateFactory(project=other_project, owner=member)

    headers = _headers(member)

    async def scenario() -> tuple[list[str], int]:
        comm = _communicator(headers)
        connected, _ = await comm.connect()
        assert connected
        from asgiref.sync import sync_to_async

        (vm,) = await sync_to_async(services.create_vms)(
            member, project=project, template=template, name="live-1", hold=True
        )
        # a VM of another project (its own member creates it)
        await sync_to_async(_create_foreign)(other_project, other_tpl)
        received = []
        while not await comm.receive_nothing(timeout=1.5):
            received.append(await comm.receive_from())
        await comm.disconnect()
        return received, vm.pk

    received, pk = async_to_sync(scenario)()
    rows = [m for m in received if f'id="vm-{pk}" hx-swap-oob="true"' in m]
    assert rows and "live-1" in rows[0] and "HOLD" in rows[0]
    assert any("virtualmachine.state.HOLD" in m for m in received)  # the event stream, too
    assert not any("not-yours" in m for m in received)


def _create_foreign(project: Any, template: Any) -> None:
    from tests.factories import MembershipFactory, UserFactory

    owner = UserFactory(username="foreigner")
    MembershipFactory(user=owner, project=project)
    services.create_vms(owner, project=project, template=template, name="not-yours", hold=True)


@pytest.mark.django_db(transaction=True)
def test_anonymous_socket_is_closed() -> None:
    headers = _headers(None)

    async def scenario() -> bool:
        comm = _communicator(headers)
        connected, _ = await comm.connect()
        return connected

    assert async_to_sync(scenario)() is False


async def _drain(comm: WebsocketCommunicator, quiet: float = 1.0) -> list[str]:
    received = []
    while not await comm.receive_nothing(timeout=quiet):
        received.append(await comm.receive_from())
    return received


def _rows(received: list[str], pk: int) -> list[str]:
    return [m for m in received if f'id="vm-{pk}" hx-swap-oob="true"' in m]


@pytest.mark.django_db(transaction=True)
def test_each_socket_gets_the_rows_its_user_may_see_rendered_for_its_rights(
    member: Any, viewer: Any, other_tenant: Any, admin_user: Any, project: Any, template: Any
) -> None:
    """One change, four users' sockets at once: the project's member (row with actions), its
    viewer (row without), another tenant (nothing of it) and a cloud admin (everything)."""
    from tenants.models import Membership

    foreign_project = Membership.objects.get(user=other_tenant).project
    foreign_tpl = VMTemplateFactory(project=foreign_project, owner=other_tenant)
    users = {"member": member, "viewer": viewer, "stranger": other_tenant, "admin": admin_user}
    headers = {name: _headers(user) for name, user in users.items()}

    async def scenario() -> tuple[dict[str, list[str]], int, int]:
        from asgiref.sync import sync_to_async

        comms = {name: _communicator(h) for name, h in headers.items()}
        for comm in comms.values():
            assert (await comm.connect())[0]
        (vm,) = await sync_to_async(services.create_vms)(
            member, project=project, template=template, name="ours", hold=True
        )
        (theirs,) = await sync_to_async(services.create_vms)(
            other_tenant, project=foreign_project, template=foreign_tpl, name="theirs", hold=True
        )
        received = {name: await _drain(comm) for name, comm in comms.items()}
        for comm in comms.values():
            await comm.disconnect()
        return received, vm.pk, theirs.pk

    received, ours, theirs = async_to_sync(scenario)()
    assert 'name="action"' in _rows(received["member"], ours)[0]
    viewer_row = _rows(received["viewer"], ours)[0]
    assert 'name="action"' not in viewer_row and "not act on it" in viewer_row
    assert _rows(received["admin"], ours) and _rows(received["admin"], theirs)
    assert _rows(received["stranger"], theirs)
    for name in ("member", "viewer"):
        assert not _rows(received[name], theirs) and not any("theirs" in m for m in received[name])
    assert not _rows(received["stranger"], ours) and not any("ours" in m for m in received["stranger"])


@pytest.mark.django_db(transaction=True)
def test_a_removed_member_stops_receiving_the_project_rows(
    member: Any, admin_user: Any, project: Any, template: Any, monkeypatch: Any
) -> None:
    """Rights are re-read in the background (every RIGHTS_TTL_S, shortened here): once the
    membership is gone, the socket gets no more of the project's changes."""
    from asgiref.sync import sync_to_async

    from compute import consumers
    from tenants.models import Membership

    monkeypatch.setattr(consumers, "RIGHTS_TTL_S", 0.2)
    headers = _headers(member)

    async def scenario() -> tuple[list[str], list[str], int, int]:
        comm = _communicator(headers)
        assert (await comm.connect())[0]
        (before,) = await sync_to_async(services.create_vms)(
            admin_user, project=project, template=template, name="seen", hold=True
        )
        seen = await _drain(comm)
        await sync_to_async(Membership.objects.filter(user=member).delete)()
        await asyncio.sleep(1.0)  # several re-reads of the rights
        (after,) = await sync_to_async(services.create_vms)(
            admin_user, project=project, template=template, name="unseen", hold=True
        )
        unseen = await _drain(comm)
        await comm.disconnect()
        return seen, unseen, before.pk, after.pk

    seen, unseen, before, after = async_to_sync(scenario)()
    assert _rows(seen, before)
    assert not _rows(unseen, after) and not any("unseen" in m for m in unseen)


def _ws_open(port: int, cookie: str) -> tuple[socket.socket, bytes]:
    """A websocket to the live server, opened by hand (RFC 6455 handshake)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/live/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
        f"Cookie: sessionid={cookie}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.split(b"\r\n", 1)[0].endswith(b"101 Switching Protocols"), head
    sock.settimeout(1.5)
    return sock, head.split(b"\r\n\r\n", 1)[1]


def _ws_messages(opened: tuple[socket.socket, bytes], first: str = "") -> list[str]:
    """The text messages the server sent: (once one containing ``first`` came, at most 30 s)
    until it went quiet for 1.5 s."""
    sock, early = opened
    data, messages = bytearray(early), []
    deadline = time.monotonic() + 30
    while True:
        while len(data) >= 2:
            assert data[0] == 0x81, "a final text frame"
            size, start = data[1] & 0x7F, 2
            if size == 126:
                size, start = struct.unpack_from("!H", data, 2)[0], 4
            elif size == 127:
                size, start = struct.unpack_from("!Q", data, 2)[0], 10
            if len(data) < start + size:
                break
            messages.append(bytes(data[start : start + size]).decode())
            del data[: start + size]
        waiting = first and not any(first in m for m in messages) and time.monotonic() < deadline
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if waiting:
                continue
            break
        if not chunk:
            break
        data += chunk
    return messages


@pytest.fixture
def live_port(transactional_db: Any) -> Iterator[int]:
    """daphne serving portal.asgi (the fan-out writes encoded frames straight to its sockets)."""
    from daphne.testing import DaphneProcess
    from django.db import connections

    from portal.asgi import application

    connections.close_all()
    proc = DaphneProcess("127.0.0.1", lambda: application)
    proc.start()
    if not proc.ready.wait(timeout=30):
        proc.terminate()
        raise RuntimeError("daphne did not start")
    yield int(proc.port.value)
    proc.terminate()
    proc.join(10)


def test_real_sockets_get_their_rows_and_not_another_tenants(
    live_port: int, member: Any, other_tenant: Any, project: Any, template: Any
) -> None:
    """Over TCP through daphne: the member's two tabs get the VM's row and panel as separate
    websocket messages; another tenant's socket gets nothing of it."""
    cookies = {name: Client() for name in ("member", "stranger")}
    cookies["member"].force_login(member)
    cookies["stranger"].force_login(other_tenant)
    tabs = [_ws_open(live_port, cookies["member"].cookies["sessionid"].value) for _ in range(2)]
    stranger = _ws_open(live_port, cookies["stranger"].cookies["sessionid"].value)

    (vm,) = services.create_vms(member, project=project, template=template, name="wired", hold=True)

    for tab in tabs:
        got = _ws_messages(tab, first=f'id="vm-{vm.pk}-panel"')
        rows = _rows(got, vm.pk)
        assert rows and rows[0].lstrip().startswith("<tr") and "wired" in rows[0]
        assert any(m.lstrip().startswith(f'<section class="card vm-panel" id="vm-{vm.pk}-panel"') for m in got)
    assert not any("wired" in m or f'id="vm-{vm.pk}"' in m for m in _ws_messages(stranger))
    for sock, _ in [*tabs, stranger]:
        sock.close()
