"""The VM list's tools (issue 14): per-user column choice kept in the session, an IP column
without N+1 queries, bulk actions through the action service with a result per VM (409s
included) and a confirmation before terminating, and state chips re-readable on their own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from network.services import nics
from tenants.quotas import set_limit
from tests.conftest import page_queries
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
from tests.network.factories import make_network

pytestmark = pytest.mark.django_db


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def roomy(project: Any) -> Any:
    for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb", "ip_leases", "nic_mbps"):
        set_limit(project, resource, -1)
    return project


def held(user: Any, project: Any, template: Any, name: str, count: int = 1) -> list[VirtualMachine]:
    return services.create_vms(user, project=project, template=template, name=name, count=count, hold=True)


# --------------------------------------------------------------------------------------------
# columns
# --------------------------------------------------------------------------------------------
def test_column_choice_is_kept_per_user_and_hides_header_and_cells(
    member: Any, project_admin: Any, project: Any, template: Any
) -> None:
    held(member, project, template, "one")
    c = browser(member)
    page = c.get("/compute/vms/").content.decode()
    assert 'id="vms-columns"' in page and 'name="show" value="ip" checked' in page
    assert "<style>" not in page  # nothing hidden yet
    # the chooser: keep size and IP; owner and age are hidden from now on
    page = c.get("/compute/vms/?sort=name&columns=1&show=size&show=ip&show=bogus").content.decode()
    assert '[data-table="vms"] .c-owner, [data-table="vms"] .c-age { display: none; }' in page
    assert 'name="show" value="owner">' in page and 'name="show" value="size" checked' in page
    # the sort links do not carry the choice along, the chooser keeps the sort
    assert "columns=1" not in re.search(r"<thead>.*?</thead>", page, re.S).group(0)  # type: ignore[union-attr]
    assert '<input type="hidden" name="sort" value="name">' in page
    # kept in the session: the next visit shows the same columns
    again = c.get("/compute/vms/").content.decode()
    assert '[data-table="vms"] .c-owner, [data-table="vms"] .c-age { display: none; }' in again
    # another user's choice is their own
    assert "<style>" not in browser(project_admin).get("/compute/vms/").content.decode()
    # everything shown again
    assert "<style>" not in c.get("/compute/vms/?columns=1&show=size&show=ip&show=owner&show=age").content.decode()


def test_the_host_list_has_the_column_chooser_too(admin_user: Any, make_sim_host: Any) -> None:
    make_sim_host("chooser-a")
    c = browser(admin_user)
    page = c.get("/compute/hosts/").content.decode()
    assert 'id="hosts-columns"' in page and 'name="show" value="power" checked' in page
    page = c.get("/compute/hosts/?columns=1&show=cluster&show=vcpu&show=memory").content.decode()
    assert '[data-table="hosts"] .c-power, [data-table="hosts"] .c-vms { display: none; }' in page
    row = re.search(r'<tr id="host-\d+".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert '<td class="c-power">' in row and '<td class="c-vms c-num">' in row, "cells carry the classes hidden"
    assert "display: none" in c.get("/compute/hosts/").content.decode(), "kept in the session"


# --------------------------------------------------------------------------------------------
# the IP column
# --------------------------------------------------------------------------------------------
def test_ip_column_shows_leases_and_costs_the_same_at_any_count(member: Any, roomy: Any, template: Any) -> None:
    net = make_network(member, roomy)
    nics.add_template_nic(member, template.pk, network=net.pk)
    (first,) = held(member, roomy, template, "first")
    address = first.nics.get().ipv4
    c = browser(member)
    few, page = page_queries(c, "/compute/vms/?per_page=25")
    row = re.search(rf'<tr id="vm-{first.pk}".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert f'<td class="c-ip mono"><div>{address}</div>' in row
    assert '<th scope="col" class="c-ip">IP addresses</th>' in page
    held(member, roomy, template, "many", count=30)
    many, page = page_queries(c, "/compute/vms/?per_page=25")
    assert page.count('<td class="c-ip mono"><div>10.') == 25
    assert many == few, (few, many)
    # the VM page's Info tab lists them as well
    assert address in c.get(f"/compute/vms/{first.pk}/").content.decode()


# --------------------------------------------------------------------------------------------
# bulk actions
# --------------------------------------------------------------------------------------------
def test_bulk_action_reports_each_vm_including_409_and_foreign_ids(member: Any, project: Any, template: Any) -> None:
    a, b = held(member, project, template, "pair", count=2)
    services.perform_action(member, b.pk, services.ActionRequest(action="release"))  # b: PENDING now
    other = ProjectFactory()
    stranger = UserFactory(username="stranger-bulk")
    MembershipFactory(user=stranger, project=other)
    (foreign,) = held(stranger, other, VMTemplateFactory(project=other, owner=stranger), "theirs")
    c = browser(member)
    page = c.get("/compute/vms/").content.decode()
    assert 'id="vm-bulk"' in page and f'name="vm" value="{a.pk}" form="vm-bulk"' in page
    resp = c.post("/compute/vms/bulk/", {"action": "release", "vm": [a.pk, b.pk, foreign.pk]})
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "1 of 3 requested" in body
    assert re.search(r'data-status="202"><td>pair-0</td>', body)
    assert re.search(r'data-status="409"><td>pair-1</td>', body)
    assert re.search(rf'data-status="404"><td>#{foreign.pk}</td>', body)  # its name is not told either
    assert VirtualMachine.objects.get(pk=a.pk).state == S.PENDING
    assert VirtualMachine.objects.get(pk=foreign.pk).state == S.HOLD
    # htmx: the same outcome as a partial, with the acted-on rows out of band
    hx = c.post("/compute/vms/bulk/", {"action": "hold", "vm": [a.pk, b.pk]}, HTTP_HX_REQUEST="true")
    text = hx.content.decode()
    assert "<!doctype" not in text.lower() and "2 of 2 requested" in text
    assert f'<tr id="vm-{a.pk}" hx-swap-oob="true"' in text and f'<tr id="vm-{b.pk}" hx-swap-oob="true"' in text


def test_bulk_terminate_asks_first(member: Any, project: Any, template: Any) -> None:
    a, b = held(member, project, template, "doomed", count=2)
    c = browser(member)
    ask = c.post("/compute/vms/bulk/", {"action": "terminate", "vm": [a.pk, b.pk]})
    text = ask.content.decode()
    assert ask.status_code == 200 and "Terminate 2 VMs?" in text and 'name="confirmed" value="1"' in text
    assert VirtualMachine.objects.filter(pk__in=[a.pk, b.pk], state=S.HOLD).count() == 2  # nothing yet
    done = c.post("/compute/vms/bulk/", {"action": "terminate", "vm": [a.pk, b.pk], "confirmed": "1"})
    assert "2 of 2 requested" in done.content.decode()
    assert not VirtualMachine.objects.filter(pk__in=[a.pk, b.pk], state=S.HOLD).exists()


@pytest.mark.parametrize(
    "body,message",
    [
        ({"action": "release"}, "select at least one VM"),
        ({"action": "migrate", "vm": ["1"]}, "action must be one of"),
        ({"action": "release", "vm": ["x1"]}, "vm must be VM ids"),
        ({"action": "release", "vm": [str(n) for n in range(1, 202)]}, "at most 200 VMs at once"),
    ],
)
def test_bulk_bad_input_is_a_400_naming_the_limit(member: Any, project: Any, template: Any, body: Any,
                                                   message: str) -> None:  # fmt: skip
    (vm,) = held(member, project, template, "safe")
    resp = browser(member).post("/compute/vms/bulk/", body)
    assert resp.status_code == 400 and message in resp.content.decode()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_viewer_gets_no_bulk_bar_and_bulk_changes_nothing(viewer: Any, member: Any, project: Any,
                                                          template: Any) -> None:  # fmt: skip
    (vm,) = held(member, project, template, "watched")
    c = browser(viewer)
    page = c.get("/compute/vms/").content.decode()
    assert 'id="vm-bulk"' not in page and 'class="row-select"' not in page
    resp = c.post("/compute/vms/bulk/", {"action": "release", "vm": [vm.pk]})
    assert "0 of 1 requested" in resp.content.decode()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


# --------------------------------------------------------------------------------------------
# the state chips
# --------------------------------------------------------------------------------------------
def test_state_chips_are_re_readable_with_the_same_filters(member: Any, project: Any, template: Any) -> None:
    a, b = held(member, project, template, "chip", count=2)
    c = browser(member)
    page = c.get("/compute/vms/?q=chip").content.decode()
    assert 'hx-get="/compute/vms/chips/?q=chip"' in page and 'hx-trigger="nephele:vm-changed from:body' in page
    chips = c.get("/compute/vms/chips/?q=chip").content.decode()
    assert '<span class="n" data-testid="chip-stopped">2</span>' in chips
    services.perform_action(member, a.pk, services.ActionRequest(action="release"))
    chips = c.get("/compute/vms/chips/?q=chip").content.decode()
    assert '<span class="n" data-testid="chip-stopped">1</span>' in chips
    assert '<span class="n" data-testid="chip-busy">1</span>' in chips
    assert '<span class="n" data-testid="chip-all">0</span>' in c.get("/compute/vms/chips/?q=nomatch").content.decode()
