"""Browser consoles' tokens through the real websocket consumer (channels' communicator on the
real ASGI application, Redis and PostgreSQL), on a simulated host whose serial console echoes
what is typed (compute/drivers/console.py EchoConsole: libvirt's test driver has no consoles).

Given a RUNNING VM, a member asks the API for a console token; the websocket opens with it once
and only for that VM and console; it ends when the member loses the project or the VM stops;
every session is audited."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from compute.models import VirtualMachine
from compute.services import console as console_service
from compute.states import VMState as S
from monitoring.models import AuditRecord
from tenants.models import Membership
from tests.conftest import client_for

from .helpers import act, drive_to, settle

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user: Any | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        c = Client()
        c.force_login(user)
        headers.append((b"cookie", f"sessionid={c.cookies['sessionid'].value}".encode()))
    return headers


def _communicator(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    from portal.asgi import application

    return WebsocketCommunicator(application, path, headers=headers)


@pytest.fixture
def running_vm(make_sim_host: Any, member: Any, admin_user: Any, project: Any, template: Any) -> VirtualMachine:
    make_sim_host("sim-a")
    return drive_to(S.RUNNING, user=member, admin=admin_user, project=project, template=template)


def _ticket(user: Any, vm: VirtualMachine, kind: str = "serial") -> dict[str, Any]:
    resp = client_for(user).post(f"/api/v1/vms/{vm.pk}/console/", {"kind": kind}, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


async def _open(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[WebsocketCommunicator, bool, Any]:
    comm = _communicator(path, headers)
    connected, code = await comm.connect()
    return comm, connected, code


def _type_and_read(path: str, user: Any, text: bytes) -> bytes:
    headers = _headers(user)

    async def scenario() -> bytes:
        comm, connected, code = await _open(path, headers)
        assert connected, code
        banner = await comm.receive_from(timeout=5)
        assert "echoes" in banner if isinstance(banner, str) else b"echoes" in banner
        await comm.send_to(bytes_data=text)
        echoed = b""
        while text.rstrip(b"\r") not in echoed:
            echoed += await comm.receive_from(timeout=5)  # type: ignore[operator]
        await comm.disconnect()
        return echoed

    return async_to_sync(scenario)()


def test_a_token_opens_the_serial_console_once(running_vm: VirtualMachine, member: Any) -> None:
    ticket = _ticket(member, running_vm)
    assert ticket["url"].startswith(f"/ws/console/{running_vm.pk}/serial/?token=")
    assert ticket["token"] in ticket["url"] and ticket["expires_at"]

    echoed = _type_and_read(ticket["url"], member, b"hello nephele\r")
    assert b"hello nephele\r\n" in echoed

    headers = _headers(member)

    async def reuse() -> bool:
        comm, connected, _code = await _open(ticket["url"], headers)
        return connected

    assert async_to_sync(reuse)() is False  # the token is spent
    actions = list(
        AuditRecord.objects.filter(object_id=str(running_vm.pk), action__startswith="console").values_list(
            "action", "actor__username", "result"
        )
    )
    assert ("console", "member", "accepted") in actions and ("console.close", "member", "done") in actions
    close = AuditRecord.objects.get(object_id=str(running_vm.pk), action="console.close")
    assert close.detail["kind"] == "serial" and close.detail["reason"] == "closed by the browser"


def test_a_token_opens_no_other_vm_and_no_other_console(
    running_vm: VirtualMachine, member: Any, admin_user: Any, project: Any, template: Any
) -> None:
    from compute import services

    (other,) = services.create_vms(member, project=project, template=template, name="second")
    settle()
    ticket = _ticket(member, running_vm)

    headers = _headers(member)

    async def elsewhere(path: str) -> bool:
        comm, connected, _code = await _open(path, headers)
        return connected

    token = ticket["token"]
    assert async_to_sync(elsewhere)(f"/ws/console/{other.pk}/serial/?token={token}") is False
    # the failed try spent it: not even its own VM opens with it now
    assert async_to_sync(elsewhere)(ticket["url"]) is False
    vnc_try = _ticket(member, running_vm)["token"]
    assert async_to_sync(elsewhere)(f"/ws/console/{running_vm.pk}/vnc/?token={vnc_try}") is False
    assert async_to_sync(elsewhere)(f"/ws/console/{running_vm.pk}/serial/") is False  # no token at all


def test_an_expired_token_is_refused(running_vm: VirtualMachine, member: Any, settings: Any) -> None:
    settings.NEPHELE_CONSOLE_TOKEN_TTL_S = 1
    ticket = _ticket(member, running_vm)
    time.sleep(1.5)  # let Redis expire it (the TTL is Redis's, not ours)

    headers = _headers(member)

    async def late() -> bool:
        comm, connected, _code = await _open(ticket["url"], headers)
        return connected

    assert async_to_sync(late)() is False


def test_a_token_of_another_user_is_refused_from_this_users_browser(
    running_vm: VirtualMachine, member: Any, project_admin: Any
) -> None:
    ticket = _ticket(member, running_vm)

    headers = _headers(project_admin)

    async def borrowed() -> bool:
        comm, connected, _code = await _open(ticket["url"], headers)
        return connected

    assert async_to_sync(borrowed)() is False


def test_who_may_ask_for_a_token(
    running_vm: VirtualMachine, member: Any, viewer: Any, other_tenant: Any, admin_user: Any
) -> None:
    url = f"/api/v1/vms/{running_vm.pk}/console/"
    assert client_for(None).post(url, {"kind": "serial"}, format="json").status_code in (401, 403)
    assert client_for(other_tenant).post(url, {"kind": "serial"}, format="json").status_code == 404
    denied = client_for(viewer).post(url, {"kind": "serial"}, format="json")
    assert denied.status_code == 403 and "manage" in denied.json()["detail"]
    assert client_for(admin_user).post(url, {"kind": "serial"}, format="json").status_code == 201
    bad = client_for(member).post(url, {"kind": "telnet"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.content.decode()
    # a simulated host has no VNC, and the template does not enable graphics
    vnc = client_for(member).post(url, {"kind": "vnc"}, format="json")
    assert vnc.status_code == 409 and "graphical" in vnc.json()["detail"]


def test_no_token_for_a_vm_that_is_not_running(running_vm: VirtualMachine, member: Any) -> None:
    act(member, running_vm, "poweroff", hard=True)
    settle(schedule=False)
    resp = client_for(member).post(f"/api/v1/vms/{running_vm.pk}/console/", {"kind": "serial"}, format="json")
    assert resp.status_code == 409 and "RUNNING" in resp.json()["detail"]


def _session_ends_when(running_vm: VirtualMachine, member: Any, settings: Any, change: Any) -> tuple[bool, Any]:
    settings.NEPHELE_CONSOLE_RECHECK_S = 0.2
    ticket = _ticket(member, running_vm)

    headers = _headers(member)

    async def scenario() -> tuple[bool, Any]:
        comm, connected, code = await _open(ticket["url"], headers)
        assert connected, code
        await comm.receive_from(timeout=5)  # the banner
        await sync_to_async(change)()
        while True:
            out = await comm.receive_output(timeout=10)
            if out["type"] == "websocket.close":
                return True, out.get("code")

    return async_to_sync(scenario)()


def test_revoked_access_closes_the_open_session(
    running_vm: VirtualMachine, member: Any, project: Any, settings: Any
) -> None:
    closed, code = _session_ends_when(
        running_vm, member, settings, lambda: Membership.objects.filter(user=member, project=project).delete()
    )
    assert closed and code == 4004
    close = AuditRecord.objects.get(object_id=str(running_vm.pk), action="console.close")
    assert "revoked" in close.detail["reason"]


def test_stopping_the_vm_closes_the_open_session(running_vm: VirtualMachine, member: Any, settings: Any) -> None:
    def poweroff() -> None:
        act(member, running_vm, "poweroff", hard=True)
        settle(schedule=False)
        assert VirtualMachine.objects.get(pk=running_vm.pk).state == S.POWEROFF

    closed, code = _session_ends_when(running_vm, member, settings, poweroff)
    assert closed and code == 4004


def test_console_log_api(running_vm: VirtualMachine, member: Any, viewer: Any) -> None:
    url = f"/api/v1/vms/{running_vm.pk}/console-log/"
    missing = client_for(member).get(url)
    assert missing.status_code == 404 and "no console log" in missing.json()["detail"]
    path = console_service.console_log_path(running_vm)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"boot\nNEPHELE-MARKER vm-x\n")
    resp = client_for(member).get(url)
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/plain")
    assert resp.content == b"boot\nNEPHELE-MARKER vm-x\n"
    assert "attachment" in resp["Content-Disposition"]
    tail = client_for(member).get(url, {"bytes": 6})
    assert tail.content == b" vm-x\n"
    bad = client_for(member).get(url, {"bytes": "lots"})
    assert bad.status_code == 400 and "bytes" in bad.content.decode()
    assert client_for(viewer).get(url).status_code == 403


def test_console_page_token_and_log_download(running_vm: VirtualMachine, member: Any, viewer: Any) -> None:
    browser = Client()
    browser.force_login(member)
    detail = browser.get(f"/compute/vms/{running_vm.pk}/").content.decode()
    assert f'href="/compute/vms/{running_vm.pk}/console/"' in detail  # the one link on the VM page
    page = browser.get(f"/compute/vms/{running_vm.pk}/console/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="serial-terminal"' in html and "vendor/xterm/xterm.js" in html
    assert 'id="vnc-screen"' not in html  # the template does not enable graphics
    assert "Nothing logged yet" in html

    ticket = browser.post(f"/compute/vms/{running_vm.pk}/console/token/", {"kind": "serial"})
    assert ticket.status_code == 200
    echoed = _type_and_read(ticket.json()["url"], member, b"from the page\r")
    assert b"from the page\r\n" in echoed
    refused = browser.post(f"/compute/vms/{running_vm.pk}/console/token/", {"kind": "vnc"})
    assert refused.status_code == 409 and "graphical" in refused.json()["error"]

    assert (
        browser.get(f"/compute/vms/{running_vm.pk}/console/log/").status_code == 302
    )  # none yet: back, with a message
    path = console_service.console_log_path(running_vm)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"NEPHELE-MARKER vm-page\n")
    assert "NEPHELE-MARKER vm-page" in browser.get(f"/compute/vms/{running_vm.pk}/console/").content.decode()
    download = browser.get(f"/compute/vms/{running_vm.pk}/console/log/")
    assert download.status_code == 200 and download.content == b"NEPHELE-MARKER vm-page\n"
    assert download["Content-Disposition"] == f'attachment; filename="vm-{running_vm.pk}-console.log"'

    onlooker = Client()
    onlooker.force_login(viewer)
    assert "/console/" not in onlooker.get(f"/compute/vms/{running_vm.pk}/").content.decode()
    assert onlooker.get(f"/compute/vms/{running_vm.pk}/console/").status_code == 403
