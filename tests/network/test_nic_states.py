"""``network.states.NIC_TABLE`` decides both the API's 409 for attaching and detaching a NIC and
whether the VM page's NIC section shows those buttons, from the VM's state (real VMs on a
simulated libvirt test-driver host, which cannot hotplug NICs)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services as compute
from compute.models import VirtualMachine
from compute.states import Action
from compute.states import VMState as S
from network.models import VMNic
from network.services import nics
from network.states import NIC_TABLE, NicAction, nic_actions
from tests.compute.helpers import act, settle

from .factories import make_network

pytestmark = pytest.mark.django_db

ATTACH_FORM = 'value="nic-attach"'
DETACH_BUTTON = 'value="nic-detach"'


def _vm_in(situation: str, member: Any, project: Any, template: Any, make_sim_host: Any) -> tuple[Any, VMNic]:
    """A VM with one NIC (attached while it was held) brought into ``situation``."""
    net = make_network(member, project, "blue", "10.0.0.0/24")
    (vm,) = compute.create_vms(member, project=project, template=template, name="web", hold=True)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    if situation != "HOLD":
        make_sim_host("nh")
        act(member, vm, Action.RELEASE)
        settle()
        if situation == "POWEROFF":
            act(member, vm, Action.POWEROFF)
            settle(schedule=False)
    vm = VirtualMachine.objects.select_related("host").get(pk=vm.pk)
    assert vm.state == situation, (vm.state, vm.last_error)
    return net, nic


@pytest.mark.parametrize("situation", [S.HOLD, S.POWEROFF, S.RUNNING])
def test_the_vm_state_decides_the_409_and_the_nic_buttons(situation: str, member: Any, member_client: Any,
                                                           project: Any, template: Any,
                                                           make_sim_host: Any) -> None:  # fmt: skip
    net, nic = _vm_in(situation, member, project, template, make_sim_host)
    vm = VirtualMachine.objects.select_related("host").get(pk=nic.vm_id)
    browser = Client()
    browser.force_login(member)
    page = browser.get(f"/compute/vms/{vm.pk}/").content.decode()

    table_allows = NIC_TABLE.allowed(NicAction.ATTACH, vm.state, busy=vm.busy)
    shown = nic_actions(vm.state, busy=vm.busy, hotplug=False)  # the test driver cannot hotplug NICs
    assert (ATTACH_FORM in page) is (NicAction.ATTACH in shown)
    assert (DETACH_BUTTON in page) is (NicAction.DETACH in shown)

    attach = member_client.post("/api/v1/nics/", {"vm": vm.pk, "network": net.pk}, format="json")
    if situation == S.HOLD:
        assert table_allows and shown == [NicAction.ATTACH, NicAction.DETACH]
        assert attach.status_code == 201
        assert member_client.delete(f"/api/v1/nics/{nic.pk}/").status_code == 204
        return
    # refused: by the table (POWEROFF: defined on a host, not running), or, for a running VM, by
    # the host that cannot hotplug; the page offers neither button, and nothing changed
    assert not shown
    assert table_allows is (situation == S.RUNNING)
    assert attach.status_code == 409 and attach.json()["field"] == "state"
    assert member_client.delete(f"/api/v1/nics/{nic.pk}/").status_code == 409
    assert list(VMNic.objects.filter(vm=vm).values_list("pk", flat=True)) == [nic.pk]


def test_an_operation_in_flight_refuses_nic_changes() -> None:
    """A VM busy with an operation (a reboot keeps it RUNNING) may not change its NICs, even on
    a host that hotplugs them (the table alone: no host here can)."""
    assert nic_actions(S.RUNNING, busy=False, hotplug=True) == [NicAction.ATTACH, NicAction.DETACH]
    assert nic_actions(S.RUNNING, busy=True, hotplug=True) == []
    assert not NIC_TABLE.allowed(NicAction.DETACH, S.RUNNING, busy=True)
