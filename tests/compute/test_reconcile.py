"""Reconciliation: what the hypervisor says wins over what the database believed, and nothing
observed is silently lost."""

from __future__ import annotations

from typing import Any

from compute import services
from compute.drivers.base import DomainSpec
from compute.drivers.registry import get_driver
from compute.models import Host, VirtualMachine, VMStateChange
from compute.states import VMState as S
from compute.tasks import reconcile_host
from monitoring.models import AuditRecord, Event

from .helpers import settle


def _running_vm(member: Any, project: Any, template: Any) -> VirtualMachine:
    (vm,) = services.create_vms(member, project=project, template=template, name="vm")
    settle()
    return VirtualMachine.objects.select_related("host").get(pk=vm.pk)


def test_guest_that_powered_itself_off_goes_poweroff(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    make_sim_host("a")
    vm = _running_vm(member, project, template)
    assert get_driver("libvirt", vm.host.uri).shutdown(vm.domain_name, 5)  # the guest shuts itself down
    reconcile_host(vm.host.pk)
    vm.refresh_from_db()
    assert (vm.state, vm.hv_state) == (S.POWEROFF, "shutoff")
    assert VMStateChange.objects.filter(vm=vm, to_state=S.POWEROFF, reason__icontains="powered off").exists()


def test_crash_without_restart_policy_powers_off(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    make_sim_host("a")
    vm = _running_vm(member, project, template)
    get_driver("libvirt", vm.host.uri).destroy(vm.domain_name)  # the process died / destroyed outside Nephele
    reconcile_host(vm.host.pk)
    vm.refresh_from_db()
    assert vm.state == S.POWEROFF
    assert Event.objects.filter(type="virtualmachine.crashed", object_id=str(vm.pk)).exists()


def test_crashed_vm_is_restarted_at_most_n_times_in_the_window(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    make_sim_host("a")
    template.restart_policy = "on-crash"
    template.save()
    vm = _running_vm(member, project, template)
    VirtualMachine.objects.filter(pk=vm.pk).update(restart_max=2)
    drv = get_driver("libvirt", vm.host.uri)
    for attempt in (1, 2):
        drv.destroy(vm.domain_name)
        reconcile_host(vm.host.pk)
        settle()
        vm.refresh_from_db()
        assert vm.state == S.RUNNING, (attempt, vm.state, vm.last_error)
        assert drv.get_info(vm.domain_name).power_state.value == "running"
    drv.destroy(vm.domain_name)
    reconcile_host(vm.host.pk)
    vm.refresh_from_db()
    assert vm.state == S.CRASH_FAILURE
    assert Event.objects.filter(type="virtualmachine.restart_given_up", object_id=str(vm.pk)).exists()
    assert Event.objects.filter(type="virtualmachine.restarted", object_id=str(vm.pk)).count() == 2
    # an administrator may try again
    services.perform_action(None, vm.pk, services.ActionRequest(action="recover", recover="retry"))
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING


def test_vanished_domain_goes_unknown_and_back_when_found(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    make_sim_host("a")
    vm = _running_vm(member, project, template)
    drv = get_driver("libvirt", vm.host.uri)
    drv.destroy(vm.domain_name)
    drv.undefine(vm.domain_name)
    reconcile_host(vm.host.pk)
    vm.refresh_from_db()
    assert (vm.state, vm.hv_state) == (S.UNKNOWN, "missing")
    drv.define(services.domain_spec(vm))
    drv.start(vm.domain_name)
    reconcile_host(vm.host.pk)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING


def test_domains_nephele_did_not_create_are_reported(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    host = make_sim_host("a")
    drv = get_driver("libvirt", host.uri)
    drv.define(
        DomainSpec(name="rogue", title="rogue", uuid="5f0c7e2a-4c1d-4c55-8d8e-1b9e4a8a0c09", vcpu=1, memory_mb=64)
    )
    report = reconcile_host(host.pk)
    assert report["unknown_domains"] == ["rogue"]
    assert Host.objects.get(pk=host.pk).unknown_domains == ["rogue"]


def test_probe_of_unreachable_host_sets_error(admin_user: Any, settings: Any) -> None:
    settings.NEPHELE_HOST_FAILED_PROBES = 1
    from compute.tasks import probe_host

    host = services.register_host(
        admin_user, name="gone", uri="qemu+ssh://nobody@127.0.0.1:1/system", hypervisor="qemu"
    )
    assert probe_host(host.pk).startswith("error")
    host.refresh_from_db()
    assert host.state == "ERROR" and host.state_message
    assert AuditRecord.objects.filter(object_type="host", action="register").exists()
