"""Host maintenance through the API, with the real scheduler and the libvirt test driver
(``settle`` carries out the driver steps in-process, as the agent would): a host in maintenance
takes no new VM; a drain migrates its VMs elsewhere and leaves it empty; activate brings it back."""

from __future__ import annotations

from typing import Any

from compute import services
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from monitoring.models import Event
from tests.compute.helpers import act, settle
from tests.conftest import client_for


def _vms(member: Any, project: Any, template: Any, n: int, name: str = "m") -> list[VirtualMachine]:
    made = services.create_vms(member, project=project, template=template, name=name, count=n)
    settle()
    return [VirtualMachine.objects.get(pk=vm.pk) for vm in made]


def test_maintenance_keeps_new_placements_off_the_host_and_lists_its_vms(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    admin = client_for(admin_user)
    a = make_sim_host("mt-a", priority=10)
    (first,) = _vms(member, project, template, 1, "before")
    b = make_sim_host("mt-b")
    answer = admin.post(f"/api/v1/hosts/{first.host_id}/maintenance/",
                        {"action": "maintenance", "reason": "firmware"}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["host"]["state"] == "MAINTENANCE" and body["host"]["maintenance_reason"] == "firmware"
    assert [v["id"] for v in body["vms"]] == [first.pk]  # still running there
    assert VirtualMachine.objects.get(pk=first.pk).state == S.RUNNING
    busy = first.host_id
    other = b.pk if busy == a.pk else a.pk
    later = _vms(member, project, template, 3, "after")
    assert {vm.host_id for vm in later} == {other}
    # a probe does not end maintenance
    from compute.drivers.registry import get_driver

    host = Host.objects.get(pk=busy)
    services.record_probe(busy, get_driver("libvirt", host.uri).host_info())
    assert Host.objects.get(pk=busy).state == "MAINTENANCE"
    # nor can a VM be migrated onto it by hand
    vm = later[0]
    refused = admin.post(f"/api/v1/vms/{vm.pk}/action/", {"action": "migrate", "host": busy}, format="json")
    assert refused.status_code == 409


def test_drain_moves_every_vm_elsewhere_and_the_host_ends_empty(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    admin = client_for(admin_user)
    a = make_sim_host("dr-a", priority=10)
    vms = _vms(member, project, template, 3, "drained")
    assert {vm.host_id for vm in vms} == {a.pk}
    act(member, vms[1], "poweroff")
    settle(schedule=False)
    b = make_sim_host("dr-b")
    # the host cannot be switched off while it holds VMs
    refused = admin.post(f"/api/v1/hosts/{a.pk}/power/", {"action": "off"}, format="json")
    assert refused.status_code == 409

    answer = admin.post(f"/api/v1/hosts/{a.pk}/maintenance/", {"action": "drain"}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert sorted(body["migrating"]) == sorted(vm.pk for vm in vms) and body["stays"] == {}
    assert body["live"] == []  # the test driver cannot migrate live: cold migrations
    settle()
    for vm in vms:
        vm.refresh_from_db()
        assert vm.host_id == b.pk, (vm.pk, vm.state, vm.last_error)
    assert {vm.state for vm in vms} == {S.RUNNING, S.POWEROFF}
    assert VirtualMachine.objects.get(pk=vms[1].pk).state == S.POWEROFF  # its power state kept
    assert services.power.resident_vms(a.pk) == []
    assert admin.get(f"/api/v1/hosts/{a.pk}/maintenance/").json()["vms"] == []
    assert Host.objects.get(pk=a.pk).alloc_vms == 0
    assert Event.objects.filter(type="host.drain", object_id=str(a.pk)).exists()

    again = admin.post(f"/api/v1/hosts/{a.pk}/maintenance/", {"action": "drain"}, format="json")
    assert again.status_code == 200 and again.json()["migrating"] == []


def test_a_vm_that_cannot_move_stays_and_is_reported(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    a = make_sim_host("st-a")
    (vm,) = _vms(member, project, template, 1, "alone")
    report = services.power.drain_host(admin_user, a.pk)
    assert report.migrating == [] and "no host" in report.stays[vm.pk]
    assert VirtualMachine.objects.get(pk=vm.pk).host_id == a.pk
    assert Host.objects.get(pk=a.pk).state == "MAINTENANCE"


def test_activate_brings_the_host_back_and_is_refused_elsewhere(make_sim_host: Any, admin_user: Any) -> None:
    admin = client_for(admin_user)
    a = make_sim_host("ac-a")
    refused = admin.post(f"/api/v1/hosts/{a.pk}/maintenance/", {"action": "activate"}, format="json")
    assert refused.status_code == 409 and "not in maintenance" in refused.json()["detail"]
    services.power.enter_maintenance(admin_user, a.pk)
    back = admin.post(f"/api/v1/hosts/{a.pk}/maintenance/", {"action": "activate"}, format="json")
    assert back.status_code == 200 and back.json()["host"]["state"] == "INIT"
    from compute.drivers.registry import get_driver

    services.record_probe(a.pk, get_driver("libvirt", a.uri).host_info())
    assert Host.objects.get(pk=a.pk).state == "MONITORED"


def test_energy_policy_powers_only_spare_empty_hosts_with_a_bmc_off(
    make_sim_host: Any,
    member: Any,
    project: Any,
    template: Any,
    admin_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    busy = make_sim_host("en-busy", priority=10)
    _vms(member, project, template, 1, "stay")
    spare, idle, nobmc = make_sim_host("en-spare", priority=5), make_sim_host("en-idle"), make_sim_host("en-nobmc")
    for h in (busy, spare, idle):
        services.power.configure_bmc(admin_user, h.pk, power_driver="redfish", bmc_address="http://127.0.0.1:9")
    with django_capture_on_commit_callbacks(execute=False):  # no BMC call: only what the policy decides
        off = services.power.power_off_empty_hosts(keep_spare=1)
    assert off == [idle.pk]
    states = dict(Host.objects.values_list("name", "state"))
    assert states == {"en-busy": "MONITORED", "en-spare": "MONITORED", "en-idle": "MAINTENANCE",
                      "en-nobmc": "MONITORED"}  # fmt: skip
    assert Host.objects.get(pk=idle.pk).power_operation == "off"
    assert nobmc.pk not in off
