"""Crash detection from libvirt's lifecycle events, through the real Celery agent: nobody calls
the reconciliation here; the event does."""

from __future__ import annotations

from typing import Any

from compute.drivers.registry import get_driver
from compute.models import VirtualMachine
from compute.states import VMState as S
from monitoring.models import Event
from tests.conftest import client_for, wait_for


def test_crash_is_noticed_from_the_lifecycle_event_and_the_vm_restarted(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    host = make_sim_host("a")
    template.restart_policy = "on-crash"
    template.save()
    pk = (
        client_for(member)
        .post("/api/v1/vms/", {"name": "phoenix", "project": project.pk, "template": template.pk}, format="json")
        .json()[0]["id"]
    )
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING)
    wait_for(lambda: Event.objects.filter(type="host.state.MONITORED").exists())
    vm = VirtualMachine.objects.get(pk=pk)
    get_driver("libvirt", host.uri).destroy(vm.domain_name)  # the crash
    wait_for(lambda: Event.objects.filter(type="virtualmachine.restarted", object_id=str(pk)).exists(), timeout=30)
    wait_for(
        lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING and not VirtualMachine.objects.get(pk=pk).operation
    )
    assert get_driver("libvirt", host.uri).get_info(vm.domain_name).power_state.value == "running"


def _deploy_ha_vm(member: Any, project: Any, template: Any, admin_user: Any, host: Any) -> VirtualMachine:
    from compute import services

    template.ha = True
    template.save()
    (vm,) = services.create_vms(member, project=project, template=template, name="critical", hold=True)
    services.perform_action(admin_user, vm.pk, services.ActionRequest(action="deploy", host_id=host.pk))
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING)
    return VirtualMachine.objects.get(pk=vm.pk)


def _kill_host(host: Any) -> None:
    """The simulated host becomes unreachable: its node file is gone and the agent's connection dropped."""
    from pathlib import Path

    from compute.drivers.registry import forget

    Path(host.uri.removeprefix("test://")).rename(host.uri.removeprefix("test://") + ".down")
    forget("libvirt", host.uri)


def test_failed_host_ha_vms_restart_elsewhere_and_do_not_come_back(
    agent: Any,
    make_sim_host: Any,
    member: Any,
    project: Any,
    template: Any,
    admin_user: Any,
    settings: Any,
    tmp_path: Any,
) -> None:
    from pathlib import Path

    from compute.drivers.base import DomainSpec
    from compute.tasks import probe_host, reconcile_host

    settings.NEPHELE_HOST_FAILED_PROBES = 2
    log = tmp_path / "fenced.log"
    settings.NEPHELE_FENCE_COMMAND = f"sh -c 'echo fenced {{name}} >> {log}'"
    a, b = make_sim_host("a"), make_sim_host("b")
    vm = _deploy_ha_vm(member, project, template, admin_user, a)
    _kill_host(a)
    for _ in range(2):
        assert probe_host(a.pk).startswith("error")
    wait_for(lambda: VirtualMachine.objects.filter(pk=vm.pk, state=S.RUNNING, host=b).exists(), timeout=30)
    assert log.read_text().strip() == "fenced a"
    story = list(Event.objects.order_by("pk").values_list("type", flat=True))
    for step in ("host.state.ERROR", "host.fenced", "virtualmachine.evacuated", "virtualmachine.state.RUNNING"):
        assert step in story, (step, story)
    assert story.index("host.state.ERROR") < story.index("host.fenced") < story.index("virtualmachine.evacuated")
    assert [p.end_reason for p in vm.placements.all()][-1] == "evacuate"

    # the host comes back with the VM's old domain still running: reconciliation removes it
    Path(a.uri.removeprefix("test://") + ".down").rename(a.uri.removeprefix("test://"))
    old = get_driver("libvirt", a.uri)
    old.define(DomainSpec(name=vm.domain_name, title=vm.name, uuid=str(vm.uuid), vcpu=vm.vcpu, memory_mb=vm.memory_mb))
    old.start(vm.domain_name)
    report = reconcile_host(a.pk)
    assert report["stale_domains"] == [vm.domain_name]
    assert all(d.name != vm.domain_name for d in old.list_domains())
    assert VirtualMachine.objects.get(pk=vm.pk).host_id == b.pk


def test_failed_fencing_moves_nothing(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any
) -> None:
    from compute.tasks import host_failover, probe_host

    settings.NEPHELE_HOST_FAILED_PROBES = 1
    settings.NEPHELE_FENCE_COMMAND = "false"
    a, _b = make_sim_host("a"), make_sim_host("b")
    vm = _deploy_ha_vm(member, project, template, admin_user, a)
    _kill_host(a)
    probe_host(a.pk)
    wait_for(lambda: Event.objects.filter(type="host.fence_failed").exists(), timeout=30)
    assert host_failover(a.pk) == "fencing failed: nothing moved"
    assert VirtualMachine.objects.get(pk=vm.pk).host_id == a.pk
