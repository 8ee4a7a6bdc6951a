"""Live updates: a member's websocket receives the re-rendered row of their project's VMs, and
nothing of other projects; anonymous sockets are refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from compute import services
from tests.factories import ProjectFactory, VMTemplateFactory
from tests.servers import LiveServer
from tests.servers import asgi_server as asgi_server_process


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


@pytest.mark.django_db(transaction=True)
def test_a_socket_whose_send_raises_does_not_stop_the_others(
    member: Any, viewer: Any, project: Any, template: Any, monkeypatch: Any
) -> None:
    """The member's socket joined first and its every send raises; the viewer's socket still
    gets the row. (A stand-in send: no real server raises an arbitrary error on demand.)"""
    from compute.consumers import LiveConsumer

    real_send = LiveConsumer.send

    async def send(self: Any, text_data: Any = None, bytes_data: Any = None, close: Any = False) -> None:
        if self.user.pk == member.pk:
            raise ValueError("this socket is broken")
        await real_send(self, text_data, bytes_data, close)

    monkeypatch.setattr(LiveConsumer, "send", send)
    broken, working = _headers(member), _headers(viewer)

    async def scenario() -> tuple[list[str], int]:
        from asgiref.sync import sync_to_async

        first, second = _communicator(broken), _communicator(working)
        assert (await first.connect())[0] and (await second.connect())[0]
        (vm,) = await sync_to_async(services.create_vms)(
            member, project=project, template=template, name="still-pushed", hold=True
        )
        got = await _drain(second)
        await first.disconnect()
        await second.disconnect()
        return got, vm.pk

    got, pk = async_to_sync(scenario)()
    assert _rows(got, pk) and "still-pushed" in _rows(got, pk)[0]


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


# --------------------------------------------------------------------------------------------
# real servers: daphne and uvicorn, each a process of its own on a free loopback port
# --------------------------------------------------------------------------------------------
BUFFER = 16  # NEPHELE_LIVE_SOCKET_BUFFER of the test servers (a few messages fill it)


@pytest.fixture(params=["daphne", "uvicorn"])
def asgi_server(request: Any, transactional_db: Any) -> Iterator[LiveServer]:
    """The ASGI application served as in production by daphne, or by uvicorn."""
    with asgi_server_process(request.param, {"NEPHELE_LIVE_SOCKET_BUFFER": str(BUFFER)}) as server:
        yield server


def _cookie(user: Any) -> str:
    c = Client()
    c.force_login(user)
    return c.cookies["sessionid"].value


class _Tab:
    """A page's websocket (the websockets library's client): reads, and acknowledges every 16
    messages as static/js/nephele.js does."""

    def __init__(self, server: LiveServer, user: Any) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(
                server.url(),
                origin=f"http://127.0.0.1:{server.port}",  # type: ignore[arg-type]
                additional_headers={"Cookie": f"sessionid={_cookie(user)}"},
                open_timeout=20,
            )
        )
        self.got: list[str] = []

    def read_until(self, done: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(self.got):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out with {len(self.got)} messages: {self.got[-3:]}"
            self.got.append(str(self.ws.recv(timeout=left)))
            if len(self.got) % 16 == 0:
                self.ws.send(json.dumps({"type": "ack", "n": len(self.got)}))
        return self.got

    def quiet(self, seconds: float = 1.0) -> list[str]:
        """What else arrives until nothing has for ``seconds``."""
        while True:
            try:
                self.got.append(str(self.ws.recv(timeout=seconds)))
            except TimeoutError:
                return self.got

    def close(self) -> None:
        self._stack.close()


def _publish_metrics(project: Any, count: int, start: int = 0, gap: float = 0.01) -> None:
    """``count`` small pushes to the project's group and the admins' (a live chart's samples), one at a time."""
    from portal import fanout
    from portal.events import ADMIN_GROUP, project_group

    async def send() -> None:
        for i in range(start, start + count):
            await fanout.publish(
                [project_group(project.pk), ADMIN_GROUP],
                {"type": "vm.metrics", "vm": 1, "project": project.pk, "figures": {"n": i}},
            )
            await asyncio.sleep(gap)

    asyncio.run(send())


def _samples(got: list[str]) -> list[int]:
    return [
        int(json.loads(m.split('data-figures="', 1)[1].split('"', 1)[0].replace("&quot;", '"'))["n"])
        for m in got
        if 'id="vm-1-sample"' in m
    ]


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the whole server frames in ``data``."""
    out = []
    while len(data) >= 2:
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = struct.unpack_from("!H", data, 2)[0], 4
        elif size == 127:
            size, start = struct.unpack_from("!Q", data, 2)[0], 10
        if len(data) < start + size:
            break
        out.append((data[0] & 0x0F, data[start : start + size]))
        data = data[start + size :]
    return out


def _hub_subscriptions(*groups: str) -> dict[str, int]:
    import redis

    from portal import fanout

    r = redis.Redis.from_url(settings.REDIS_URL)
    return {
        g: int(n) for g, (_, n) in zip(groups, r.pubsub_numsub(*(fanout.group_channel(g) for g in groups)), strict=True)
    }


def test_real_sockets_get_their_rows_and_not_another_tenants(
    asgi_server: LiveServer, member: Any, other_tenant: Any, project: Any, template: Any
) -> None:
    """Over TCP: the member's two tabs get the VM's row and panel as separate websocket
    messages; another tenant's socket gets nothing of it (its process is not even subscribed
    to the project's channel through that socket)."""
    tabs = [_Tab(asgi_server, member) for _ in range(2)]
    stranger = _Tab(asgi_server, other_tenant)

    (vm,) = services.create_vms(member, project=project, template=template, name="wired", hold=True)

    for tab in tabs:
        got = tab.read_until(lambda got: any(f'id="vm-{vm.pk}-panel"' in m for m in got))
        rows = _rows(got, vm.pk)
        assert rows and rows[0].lstrip().startswith("<tr") and "wired" in rows[0]
        assert any(m.lstrip().startswith(f'<section class="card vm-panel" id="vm-{vm.pk}-panel"') for m in got)
    assert not any("wired" in m or f'id="vm-{vm.pk}"' in m for m in stranger.quiet(1.5))
    for tab in [*tabs, stranger]:
        tab.close()


def test_a_stalled_socket_is_closed_while_the_others_keep_receiving(
    asgi_server: LiveServer, member: Any, project: Any
) -> None:
    """A page that stops acknowledging is closed (4013) once its queue is full; the two tabs
    that read get every push, in order. The stalled socket drains TCP as it goes (without
    acknowledging), so the close frame is in hand before the server's close-handshake timeout
    resets the connection (a reset would discard unread bytes, the close frame among them)."""
    from compute.consumers import ACK_WINDOW, CLOSE_FELL_BEHIND

    readers = [_Tab(asgi_server, member) for _ in range(2)]
    stalled, early = _ws_open(asgi_server.port, _cookie(member))
    stalled.settimeout(60)  # a bound for a loaded machine: the close comes once its queue is full
    total = ACK_WINDOW + BUFFER + 40

    def drain() -> bytes:
        data = bytearray(early)
        while chunk := _recv_or_eof(stalled):
            data += chunk
            if any(opcode == 0x8 for opcode, _ in _frames(bytes(data))):
                break
        return bytes(data)

    with ThreadPoolExecutor(len(readers) + 1) as pool:  # the tabs read (and acknowledge) at once
        draining = pool.submit(drain)
        reading = [pool.submit(tab.read_until, lambda got: len(_samples(got)) >= total) for tab in readers]
        _publish_metrics(project, total)
        for done in reading:
            assert _samples(done.result()) == list(range(total))
        frames = _frames(draining.result())
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == CLOSE_FELL_BEHIND, frames[-2:]
    sent = [payload for opcode, payload in frames if opcode == 0x1]
    assert ACK_WINDOW <= len(sent) < total  # what it was sent before it fell behind, then nothing
    stalled.close()
    for tab in readers:
        tab.close()


def _recv_or_eof(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        return b""


def test_sockets_that_break_mid_push_do_not_stop_the_others(asgi_server: LiveServer, member: Any, project: Any) -> None:
    """Tabs that vanish (TCP reset) while pushes flow: the remaining tab gets every push."""
    reader = _Tab(asgi_server, member)
    broken = [_ws_open(asgi_server.port, _cookie(member))[0] for _ in range(5)]
    for sock in broken:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST, with the server still counting them as members for a moment
    _publish_metrics(project, 30, gap=0.005)
    assert _samples(reader.read_until(lambda got: len(_samples(got)) >= 30)) == list(range(30))
    reader.close()


def test_after_the_hubs_redis_connection_is_cut_every_socket_is_told_to_refetch(
    asgi_server: LiveServer, member: Any, admin_user: Any, project: Any
) -> None:
    """CLIENT KILL on the server's hub connection: it subscribes again and tells each socket to
    re-read its page ({"type": "refetch"}); the pushes after that arrive again."""
    import redis

    from portal import fanout

    tabs = [_Tab(asgi_server, member), _Tab(asgi_server, admin_user)]
    r = redis.Redis.from_url(settings.REDIS_URL)
    name = f"{fanout.live_channel()}.hub.{asgi_server.pid}"
    (hub,) = [c for c in r.client_list() if c.get("name") == name]
    assert r.client_kill_filter(_id=hub["id"]) == 1
    for tab in tabs:
        assert json.loads(tab.read_until(lambda got: len(got) >= 1)[0]) == {"type": "refetch"}
    _publish_metrics(project, 3)
    for tab in tabs:
        assert _samples(tab.read_until(lambda got: len(_samples(got)) >= 3)) == [0, 1, 2]
        tab.close()


def test_a_server_subscribes_only_the_groups_of_its_sockets(
    asgi_server: LiveServer, member: Any, other_tenant: Any, project: Any
) -> None:
    """With sockets of project A only, the server is not subscribed to project B's channel nor
    the admins'; a socket of B subscribes B, and the last one to leave unsubscribes it."""
    from portal.events import ADMIN_GROUP, project_group
    from tenants.models import Membership

    a, b = project_group(project.pk), project_group(Membership.objects.get(user=other_tenant).project_id)
    tab = _Tab(asgi_server, member)
    assert _hub_subscriptions(a, b, ADMIN_GROUP) == {a: 1, b: 0, ADMIN_GROUP: 0}
    theirs = _Tab(asgi_server, other_tenant)
    assert _hub_subscriptions(a, b) == {a: 1, b: 1}
    theirs.close()
    deadline = time.monotonic() + 10
    while _hub_subscriptions(b)[b] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _hub_subscriptions(a, b) == {a: 1, b: 0}
    tab.close()
