"""Live updates: a member's websocket receives the re-rendered row of their project's VMs, and
nothing of other projects; anonymous sockets are refused."""

from __future__ import annotations

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
