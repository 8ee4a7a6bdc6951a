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
