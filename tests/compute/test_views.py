"""The compute pages through the browser's forms (Django test client), and the live consumer.

What each role sees and may do: a member sees their project's VMs only, a foreign VM is a 404,
a viewer gets no buttons and a refused POST changes nothing, an illegal action shows the
service's 409 message, host pages are for cloud admins. htmx posts answer with the re-rendered
row and panel (the same partials the websocket pushes).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from compute import services
from compute.models import Host, VirtualMachine, VMTemplate
from compute.states import VMState as S
from tenants import quotas
from tests.factories import ClusterFactory, MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory

from .helpers import act, drive_to, settle

HX = {"HTTP_HX_REQUEST": "true"}


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def held(user: Any, project: Any, template: Any, name: str = "held") -> VirtualMachine:
    (vm,) = services.create_vms(user, project=project, template=template, name=name, hold=True)
    return vm


def row_of(page: str, vm: VirtualMachine) -> str:
    m = re.search(rf'<tr id="vm-{vm.pk}".*?</tr>', page, re.S)
    assert m, f"no row for vm {vm.pk}"
    return m.group(0)


# --------------------------------------------------------------------------------------------
# VM list and create
# --------------------------------------------------------------------------------------------
def test_member_creates_a_vm_from_the_form_and_sees_it(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    c = browser(member)
    page = c.get("/compute/vms/")
    assert page.status_code == 200 and b"Create a virtual machine" in page.content
    resp = c.post("/compute/vms/create/", {"name": "web-1", "template": template.pk, "count": 1})
    assert resp.status_code == 302
    settle()
    page = c.get("/compute/vms/").content.decode()
    vm = VirtualMachine.objects.get(name="web-1")
    row = row_of(page, vm)
    assert "RUNNING" in row and "1.0 GiB" in row and "member" in row
    # buttons for what the state allows, and nothing else
    assert 'aria-label="Power off web-1"' in row and 'aria-label="Resume web-1"' not in row
    assert "web-1 created" in page


def test_member_sees_only_the_active_projects_vms(member: Any, project: Any, template: Any) -> None:
    mine = held(member, project, template, "mine")
    other = ProjectFactory()
    stranger = UserFactory(username="stranger2")
    MembershipFactory(user=stranger, project=other)
    foreign = held(stranger, other, VMTemplateFactory(project=other, owner=stranger), "foreign")
    page = browser(member).get("/compute/vms/").content.decode()
    assert f'id="vm-{mine.pk}"' in page and f'id="vm-{foreign.pk}"' not in page
    # a non-admin cannot widen the scope with the admin filter
    page = browser(member).get(f"/compute/vms/?project={other.pk}").content.decode()
    assert f'id="vm-{foreign.pk}"' not in page
    page = browser(member).get("/compute/vms/?project=all").content.decode()
    assert f'id="vm-{foreign.pk}"' not in page and f'id="vm-{mine.pk}"' in page


def test_admin_sees_all_projects_with_a_filter(admin_user: Any, member: Any, project: Any, template: Any) -> None:
    mine = held(member, project, template, "mine")
    other = ProjectFactory()
    foreign = held(admin_user, other, template, "foreign")
    c = browser(admin_user)
    everything = c.get("/compute/vms/?project=all").content.decode()
    assert f'id="vm-{mine.pk}"' in everything and f'id="vm-{foreign.pk}"' in everything
    only_other = c.get(f"/compute/vms/?project={other.pk}").content.decode()
    assert f'id="vm-{foreign.pk}"' in only_other and f'id="vm-{mine.pk}"' not in only_other
    assert (
        f'<th scope="col" class="c-host"><a class="sort" href="?project={other.pk}&amp;sort=host">Host' in only_other
    )  # admins see where VMs run


def test_state_filter_and_search(member: Any, project: Any, template: Any) -> None:
    on_hold = held(member, project, template, "alpha")
    (pending,) = services.create_vms(member, project=project, template=template, name="beta")
    c = browser(member)
    stopped = c.get("/compute/vms/?state=stopped").content.decode()
    assert f'id="vm-{on_hold.pk}"' in stopped and f'id="vm-{pending.pk}"' not in stopped
    busy = c.get("/compute/vms/?state=busy").content.decode()
    assert f'id="vm-{pending.pk}"' in busy and f'id="vm-{on_hold.pk}"' not in busy
    found = c.get("/compute/vms/?q=bet").content.decode()
    assert f'id="vm-{pending.pk}"' in found and f'id="vm-{on_hold.pk}"' not in found


def test_bad_create_input_is_shown_beside_the_field(member: Any, project: Any, template: Any) -> None:
    resp = browser(member).post("/compute/vms/create/", {"name": "bad/name", "template": template.pk, "count": 1})
    assert resp.status_code == 400
    page = resp.content.decode()
    assert re.search(r'id="id_name".*?<ul class="errorlist" role="alert"><li>name: Names are', page, re.S)
    assert 'id="create-vm" open' in page  # the form stays open with what was typed
    assert not VirtualMachine.objects.exists()


def test_quota_refusal_is_shown_and_creates_nothing(member: Any, project: Any, template: Any) -> None:
    quotas.set_limit(project, "vcpu", 1)
    resp = browser(member).post("/compute/vms/create/", {"name": "big", "template": template.pk, "count": 1})
    assert resp.status_code == 400 and b"quota" in resp.content.lower()
    assert not VirtualMachine.objects.exists()


def test_viewer_cannot_create(viewer: Any, project: Any, template: Any) -> None:
    c = browser(viewer)
    page = c.get("/compute/vms/").content.decode()
    assert 'id="create-vm"' not in page
    resp = c.post("/compute/vms/create/", {"name": "x", "template": template.pk, "count": 1})
    assert resp.status_code == 400 and b"project not found" in resp.content
    assert not VirtualMachine.objects.exists()


def test_list_query_count_does_not_grow_with_rows(
    member: Any, project: Any, template: Any, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.create_vms(member, project=project, template=template, name="a", count=2, hold=True)
    c = browser(member)
    with CaptureQueriesContext(connection) as few:
        c.get("/compute/vms/")
    services.create_vms(member, project=project, template=template, name="b", count=12, hold=True)
    with django_assert_max_num_queries(len(few)):
        page = c.get("/compute/vms/").content.decode()
    assert page.count('<tr id="vm-') == 14


# --------------------------------------------------------------------------------------------
# VM detail and actions
# --------------------------------------------------------------------------------------------
def test_illegal_action_shows_the_409_message_and_changes_nothing(member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template, "h")
    c = browser(member)
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "poweroff"}, **HX)
    assert resp.status_code == 200 and resp["X-Nephele-Status"] == "409"
    body = resp.content.decode()
    assert "cannot poweroff a VM in state HOLD" in body
    assert 'id="messages" hx-swap-oob="true"' in body  # the message area, swapped in place
    assert re.search(r'<td class="c-actions">.*cannot poweroff a VM in state HOLD', row_of(body, vm), re.S)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD
    # without JavaScript: back to the page with the message
    resp = c.post(
        f"/compute/vms/{vm.pk}/action/", {"action": "poweroff"}, HTTP_REFERER="http://testserver/compute/vms/"
    )
    assert resp.status_code == 302 and resp["Location"] == "http://testserver/compute/vms/"
    assert "cannot poweroff a VM in state HOLD" in c.get("/compute/vms/").content.decode()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_htmx_action_answers_with_the_row_and_panel(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    (vm,) = services.create_vms(member, project=project, template=template, name="web")
    settle()
    resp = browser(member).post(f"/compute/vms/{vm.pk}/action/", {"action": "poweroff"}, **HX)
    assert resp["X-Nephele-Status"] == "202"
    body = resp.content.decode()
    assert f'<tr id="vm-{vm.pk}" hx-swap-oob="true"' in body
    assert f'id="vm-{vm.pk}-panel" hx-swap-oob="true"' in body
    vm.refresh_from_db()
    assert vm.operation == "poweroff"
    assert "poweroff" in row_of(body, vm)  # the operation in progress is shown
    assert "Power off requested for web." in body
    settle(schedule=False)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.POWEROFF


def test_detail_shows_why_not_placed_then_history(member: Any, project: Any, template: Any, make_sim_host: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="waiting")
    services.place_vm(vm.pk)  # no host at all: the scheduler says why
    c = browser(member)
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert "Not placed yet." in page and VirtualMachine.objects.get(pk=vm.pk).schedule_message in page
    assert "Never placed on a host." in page
    make_sim_host("sim-a")
    services.place_vm(vm.pk)
    settle()
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert 'data-testid="vm-state">RUNNING' in page
    placement = page[page.index(f'id="vm-{vm.pk}-placement"') :]
    assert "sim-a" in placement
    log = c.get(f"/compute/vms/{vm.pk}/log/").content.decode()
    assert "PROLOG" in log and "created" in log
    # hard variants beside the normal ones; terminate asks first
    assert 'aria-label="Power off waiting (hard)"' in page and 'aria-label="Reboot waiting (hard)"' in page
    assert 'aria-label="Terminate waiting (hard)"' in page and 'hx-confirm="Terminate waiting?' in page
    assert 'id="resize"' not in page  # not while running


def test_resize_form_when_allowed(member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template)
    c = browser(member)
    assert 'id="resize"' in c.get(f"/compute/vms/{vm.pk}/").content.decode()
    c.post(f"/compute/vms/{vm.pk}/action/", {"action": "resize", "vcpu": "3", "memory_mb": "2048"})
    vm.refresh_from_db()
    assert (vm.vcpu, vm.memory_mb) == (3, 2048)
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "resize", "vcpu": "9999", "memory_mb": "2048"}, **HX)
    assert resp["X-Nephele-Status"] == "400" and b"vcpu" in resp.content
    assert VirtualMachine.objects.get(pk=vm.pk).vcpu == 3


def test_last_error_and_admin_recovery(
    member: Any, admin_user: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    vm = drive_to(S.BOOT_FAILURE, user=member, admin=admin_user, project=project, template=template)
    member_page = browser(member).get(f"/compute/vms/{vm.pk}/").content.decode()
    assert "Last error:" in member_page and "injected driver failure" in member_page
    assert 'id="recover"' not in member_page  # recover is for cloud admins
    c = browser(admin_user)
    admin_page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    for how in ("success", "failure", "retry", "delete"):
        assert f'aria-label="Recover {vm.name}: {how}"' in admin_page
    c.post(f"/compute/vms/{vm.pk}/action/", {"action": "recover", "recover": "failure"})
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.POWEROFF


def test_admin_deploys_to_a_chosen_host(
    member: Any, admin_user: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("first")
    second = make_sim_host("second")
    vm = held(member, project, template)
    assert 'id="deploy"' not in browser(member).get(f"/compute/vms/{vm.pk}/").content.decode()
    c = browser(admin_user)
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert 'id="deploy"' in page and f'<option value="{second.pk}">second' in page
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "deploy", "host": str(second.pk)}, **HX)
    assert resp["X-Nephele-Status"] == "202"
    settle(schedule=False)
    vm.refresh_from_db()
    assert vm.state == S.RUNNING and vm.host_id == second.pk
    assert 'id="migrate"' in c.get(f"/compute/vms/{vm.pk}/").content.decode()


def test_viewer_sees_no_buttons_and_cannot_act(viewer: Any, member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template, "h")
    c = browser(viewer)
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert 'data-testid="vm-state">HOLD' in page
    assert "Terminate" not in page and "Release" not in page and 'id="resize"' not in page
    assert "You can view this VM but not act on it." in page
    assert 'name="action"' not in c.get("/compute/vms/").content.decode()
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "terminate"})
    assert resp.status_code == 302
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "release"}, **HX)
    assert resp["X-Nephele-Status"] in ("403", "404")
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_other_tenant_gets_404(other_tenant: Any, member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template, "secret")
    c = browser(other_tenant)
    assert c.get(f"/compute/vms/{vm.pk}/").status_code == 404
    assert c.get(f"/compute/vms/{vm.pk}/live/").status_code == 404
    assert c.post(f"/compute/vms/{vm.pk}/action/", {"action": "terminate"}).status_code == 404
    assert b"secret" not in c.get("/compute/vms/").content
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_live_endpoint_is_the_polling_fallback(member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="p")
    c = browser(member)
    body = c.get(f"/compute/vms/{vm.pk}/live/").content.decode()
    assert f'<template><tr id="vm-{vm.pk}" hx-swap-oob="true"' in body
    assert f'id="vm-{vm.pk}-panel" hx-swap-oob="true"' in body
    # a row in flux polls that endpoint while the websocket is down; a settled one does not
    page = c.get("/compute/vms/").content.decode()
    assert f'hx-get="/compute/vms/{vm.pk}/live/" hx-trigger="every 10s, nephele:refresh" data-poll' in row_of(page, vm)
    act(member, vm, "hold")
    assert "hx-trigger" not in row_of(c.get("/compute/vms/").content.decode(), vm).split(">")[0]


# --------------------------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------------------------
def test_templates_list_and_create(member: Any, viewer: Any, project: Any, template: Any) -> None:
    c = browser(member)
    page = c.get("/compute/templates/").content.decode()
    assert template.name in page and 'id="new-template"' in page
    assert f"?create=1&amp;template={template.pk}" in page
    assert (
        f'<option value="{template.pk}" selected>'
        in c.get(f"/compute/vms/?create=1&template={template.pk}").content.decode()
    )
    resp = c.post(
        "/compute/templates/", {"name": "mine", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "labels": "zone=a"}
    )
    assert resp.status_code == 302
    assert project.vm_templates.get(name="mine").required_labels == {"zone": "a"}
    bad = c.post("/compute/templates/", {"name": "bad", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "labels": "zone"})
    assert bad.status_code == 400 and b"write labels as key=value" in bad.content
    v = browser(viewer)
    assert 'id="new-template"' not in v.get("/compute/templates/").content.decode()
    v.post("/compute/templates/", {"name": "nope", "vcpu": 1, "memory_mb": 256, "disk_gb": 0})
    assert not VMTemplate.objects.filter(name="nope").exists()


# --------------------------------------------------------------------------------------------
# hosts (cloud admins)
# --------------------------------------------------------------------------------------------
def test_host_pages_are_for_admins(member: Any, make_sim_host: Any) -> None:
    host = make_sim_host("a")
    c = browser(member)
    assert c.get("/compute/hosts/").status_code == 404
    assert c.get(f"/compute/hosts/{host.pk}/").status_code == 404
    assert c.post(f"/compute/hosts/{host.pk}/action/", {"action": "disable"}).status_code == 404
    assert (
        c.post("/compute/hosts/register/", {"name": "x", "uri": "test:///default", "hypervisor": "test"}).status_code
        == 404
    )
    assert Host.objects.get(pk=host.pk).state == "MONITORED" and not Host.objects.filter(name="x").exists()
    assert "Hosts</a>" not in c.get("/").content.decode()  # not in the navigation either


def test_host_list_shows_allocation_and_measured_use(
    admin_user: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    host = make_sim_host("a", cluster=ClusterFactory(name="rack1"), labels={"ssd": "yes"})
    services.create_vms(member, project=project, template=template, name="w")
    settle()
    page = browser(admin_user).get("/compute/hosts/").content.decode()
    row = page[page.index(f'<tr id="host-{host.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "MONITORED" in row and "rack1" in row and "ssd=yes" in row
    assert 'aria-label="vCPU allocated on a"' in row and 'aria-label="CPU load measured on a"' in row
    assert 'aria-label="memory allocated on a"' in row and 'aria-label="memory in use on a"' in row
    assert "2 / 16" in row  # the VM's 2 vCPU allocated of 16
    assert 'aria-label="Disable a"' in row and 'aria-label="Enable a"' not in row
    detail = browser(admin_user).get(f"/compute/hosts/{host.pk}/").content.decode()
    assert 'data-testid="host-state">MONITORED' in detail and ">w</a>" in detail


def test_host_register_and_state_buttons(
    admin_user: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    host = make_sim_host("a")
    c = browser(admin_user)
    bad = c.post("/compute/hosts/register/", {"name": "b", "uri": "http://nope", "hypervisor": "test", "labels": "x"})
    assert bad.status_code == 400
    assert b"uri must be a libvirt URI" in bad.content or b"write labels as key=value" in bad.content
    bad = c.post("/compute/hosts/register/", {"name": "b", "uri": "http://nope", "hypervisor": "test"})
    assert bad.status_code == 400 and b"uri must be a libvirt URI" in bad.content
    assert not Host.objects.filter(name="b").exists()
    services.create_vms(member, project=project, template=template, name="w")
    settle()
    resp = c.post(f"/compute/hosts/{host.pk}/action/", {"action": "disable"}, **HX)
    body = resp.content.decode()
    assert f'<tr id="host-{host.pk}" hx-swap-oob="true"' in body and "DISABLED" in body
    assert f'id="host-{host.pk}-panel" hx-swap-oob="true"' in body
    assert 'aria-label="Enable a"' in body and 'aria-label="Disable a"' not in body
    assert Host.objects.get(pk=host.pk).state == "DISABLED"
    # offline is refused while VMs live there: the message beside the buttons, and nothing changes
    resp = c.post(f"/compute/hosts/{host.pk}/action/", {"action": "offline"}, **HX)
    assert b"still has 1 VM(s)" in resp.content and b'<div class="note" role="alert">' in resp.content
    assert Host.objects.get(pk=host.pk).state == "DISABLED"
    resp = c.post(
        f"/compute/hosts/{host.pk}/action/", {"action": "offline"}, HTTP_REFERER="http://testserver/compute/hosts/"
    )
    assert resp.status_code == 302 and b"still has 1 VM(s)" in c.get("/compute/hosts/").content


# --------------------------------------------------------------------------------------------
# live: the websocket consumer
# --------------------------------------------------------------------------------------------
def _ws_headers(user: Any) -> list[tuple[bytes, bytes]]:
    c = Client()
    c.force_login(user)
    return [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={c.cookies['sessionid'].value}".encode())]  # fmt: skip


async def _drain(comm: WebsocketCommunicator, quiet: float = 1.5) -> list[str]:
    got = []
    while not await comm.receive_nothing(timeout=quiet):
        got.append(await comm.receive_from())
    return got


@pytest.mark.django_db(transaction=True)
def test_member_receives_their_vm_rows_rerendered_and_nothing_foreign(
    member: Any, viewer: Any, project: Any, template: Any
) -> None:
    from portal.asgi import application

    mine = held(member, project, template, "live-1")
    other = ProjectFactory()
    stranger = UserFactory(username="stranger3")
    MembershipFactory(user=stranger, project=other)
    foreign = held(stranger, other, VMTemplateFactory(project=other, owner=stranger), "not-yours")
    headers = {"member": _ws_headers(member), "viewer": _ws_headers(viewer)}

    async def scenario() -> dict[str, list[str]]:
        comms = {who: WebsocketCommunicator(application, "/ws/live/", headers=h) for who, h in headers.items()}
        for comm in comms.values():
            assert (await comm.connect())[0]
        await sync_to_async(act)(member, mine, "release")
        await sync_to_async(act)(stranger, foreign, "release")
        got = {who: await _drain(comm) for who, comm in comms.items()}
        for comm in comms.values():
            await comm.disconnect()
        return got

    got = async_to_sync(scenario)()
    rows = [m for m in got["member"] if f'<tr id="vm-{mine.pk}" hx-swap-oob="true"' in m]
    assert rows, got["member"]
    assert 'data-state="PENDING"' in rows[-1] and 'aria-label="Hold live-1"' in rows[-1]
    # the detail panel comes as a frame of its own (a <tr> and a <section> cannot share one)
    assert any(
        m.startswith(f'<section class="card vm-panel" id="vm-{mine.pk}-panel" hx-swap-oob="true"')
        for m in got["member"]
    )
    viewer_rows = [m for m in got["viewer"] if f'<tr id="vm-{mine.pk}"' in m]
    assert viewer_rows and 'name="action"' not in viewer_rows[-1]  # the same change, without buttons
    for who in ("member", "viewer"):
        assert not any("not-yours" in m or f'id="vm-{foreign.pk}"' in m for m in got[who]), who


@pytest.mark.django_db(transaction=True)
def test_host_changes_reach_admins_only(admin_user: Any, member: Any, make_sim_host: Any) -> None:
    from portal.asgi import application

    host = make_sim_host("live-host")
    headers = {"admin": _ws_headers(admin_user), "member": _ws_headers(member)}

    async def scenario() -> dict[str, list[str]]:
        comms = {who: WebsocketCommunicator(application, "/ws/live/", headers=h) for who, h in headers.items()}
        for comm in comms.values():
            assert (await comm.connect())[0]
        await sync_to_async(services.set_host_state)(admin_user, host.pk, "disable")
        got = {who: await _drain(comm) for who, comm in comms.items()}
        for comm in comms.values():
            await comm.disconnect()
        return got

    got = async_to_sync(scenario)()
    rows = [m for m in got["admin"] if f'<tr id="host-{host.pk}" hx-swap-oob="true"' in m]
    assert rows and 'data-state="DISABLED"' in rows[-1]
    assert any(f'id="host-{host.pk}-panel" hx-swap-oob="true"' in m for m in got["admin"])
    assert not any(f'id="host-{host.pk}"' in m for m in got["member"])


@pytest.mark.django_db(transaction=True)
def test_anonymous_socket_is_refused() -> None:
    from portal.asgi import application

    async def scenario() -> bool:
        comm = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await comm.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_a_rows_menu_is_fetched_when_opened_with_the_same_rights(
    member: Any, viewer: Any, other_tenant: Any, project: Any, template: Any
) -> None:
    """A list row carries no menu forms: the menu comes from vm-menu when it opens (issue 13)."""
    vm = held(member, project, template, "menu")
    page = browser(member).get("/compute/vms/").content.decode()
    row = row_of(page, vm)
    assert f'hx-get="/compute/vms/{vm.pk}/menu/"' in row and "Terminate" not in row
    menu = browser(member).get(f"/compute/vms/{vm.pk}/menu/").content.decode()
    assert 'value="terminate"' in menu and "hx-confirm=" in menu  # destructive: asks first
    assert "<form" not in browser(viewer).get(f"/compute/vms/{vm.pk}/menu/").content.decode()
    assert browser(other_tenant).get(f"/compute/vms/{vm.pk}/menu/").status_code == 404


def test_template_edit_and_delete_through_the_list(member: Any, viewer: Any, project: Any, template: Any) -> None:
    c = browser(member)
    page = c.get("/compute/templates/").content.decode()
    # the template's disks, edit and delete are reachable from its row
    assert f'href="/storage/templates/{template.pk}/disks/"' in page
    assert f'href="/compute/templates/{template.pk}/edit/"' in page
    assert f'action="/compute/templates/{template.pk}/delete/"' in page and "data-confirm=" in page
    form = c.get(f"/compute/templates/{template.pk}/edit/").content.decode()
    assert f'value="{template.name}"' in form
    bad = c.post(f"/compute/templates/{template.pk}/edit/", {"name": "x", "vcpu": 0, "memory_mb": 256, "disk_gb": 0})
    assert bad.status_code == 400 and b"errorlist" in bad.content
    template.refresh_from_db()
    assert template.vcpu == 2
    resp = c.post(
        f"/compute/templates/{template.pk}/edit/",
        {"name": "renamed", "vcpu": 4, "memory_mb": 2048, "disk_gb": 10, "labels": "zone=b"},
    )
    assert resp.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.vcpu, template.memory_mb, template.required_labels) == (
        "renamed", 4, 2048, {"zone": "b"},
    )  # fmt: skip
    # a viewer sees neither button, and the pages answer 404 and change nothing
    v = browser(viewer)
    vpage = v.get("/compute/templates/").content.decode()
    assert f"/compute/templates/{template.pk}/edit/" not in vpage and "/disks/" in vpage
    assert v.get(f"/compute/templates/{template.pk}/edit/").status_code == 404
    assert v.post(f"/compute/templates/{template.pk}/delete/").status_code == 404
    assert VMTemplate.objects.filter(pk=template.pk).exists()
    resp = c.post(f"/compute/templates/{template.pk}/delete/", follow=True)
    assert b"Template renamed deleted." in resp.content
    assert not VMTemplate.objects.filter(pk=template.pk).exists()


# --------------------------------------------------------------------------------------------
# the VM page's tabs
# --------------------------------------------------------------------------------------------
def test_vm_page_has_aria_tabs_deep_linkable_and_lazy(member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template, "tabbed")
    c = browser(member)
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert 'role="tablist"' in page
    keys = ["info", "capacity", "storage", "network", "snapshots", "placement", "log", "monitoring"]
    for key in keys:
        assert f'id="tab-{key}"' in page and f'aria-controls="panel-{key}"' in page and f'id="panel-{key}"' in page
    # info is the default: the only panel shown, the only tab in the tab order
    assert '<section role="tabpanel" id="panel-info" aria-labelledby="tab-info" tabindex="0">' in page
    assert page.count('aria-selected="true"') == 1 and 'aria-selected="true" tabindex="0">Info<' in page
    # the costly tabs are placeholders fetched when shown, not rendered
    assert f'hx-get="/compute/vms/{vm.pk}/log/"' in page and 'class="timeline"' not in page
    assert f'hx-get="/compute/vms/{vm.pk}/monitoring/"' in page and 'id="vm-charts"' not in page
    # ?tab= opens one (no JavaScript needed): the log rendered in the page, info hidden
    page = c.get(f"/compute/vms/{vm.pk}/?tab=log").content.decode()
    assert 'class="timeline"' in page and "HOLD" in page
    assert 'id="panel-info" aria-labelledby="tab-info" tabindex="0" hidden' in page
    assert 'aria-selected="true" tabindex="0">Log<' in page
    assert 'id="vm-charts"' in c.get(f"/compute/vms/{vm.pk}/?tab=monitoring").content.decode()
    # an unknown tab is the default, not an error
    assert c.get(f"/compute/vms/{vm.pk}/?tab=nope").status_code == 200
    # the lazy parts on their own, through the same gate
    assert "HOLD" in c.get(f"/compute/vms/{vm.pk}/log/").content.decode()
    assert f'/vms/{vm.pk}/metrics/"' in c.get(f"/compute/vms/{vm.pk}/monitoring/").content.decode()
    # the console tab opens the console page (for those who may open it)
    assert f'id="tab-console" href="/compute/vms/{vm.pk}/console/"' in page


def test_vm_tabs_of_a_foreign_vm_are_404(other_tenant: Any, member: Any, project: Any, template: Any) -> None:
    vm = held(member, project, template, "mine")
    c = browser(other_tenant)
    for url in (f"/compute/vms/{vm.pk}/?tab=log", f"/compute/vms/{vm.pk}/log/", f"/compute/vms/{vm.pk}/monitoring/"):
        assert c.get(url).status_code == 404
