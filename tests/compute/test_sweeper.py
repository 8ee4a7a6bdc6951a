"""The transient-state sweeper for VMs: a step whose message was lost is re-driven with the same
sequence number through the real agent and the VM runs; a step nobody ever reports on fails into
its failure state with the reason after NEPHELE_STEP_MAX_TRIES — no VM stays in PROLOG forever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from monitoring.models import Event
from tests.conftest import wait_for


def _age(pk: int, settings: Any) -> None:
    past = timezone.now() - timedelta(seconds=settings.NEPHELE_STEP_DEADLINE_S + 1)
    VirtualMachine.objects.filter(pk=pk).update(operation_at=past)


def test_a_lost_step_is_redriven_and_the_vm_runs(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any,
    monkeypatch: Any,
) -> None:  # fmt: skip
    from compute import tasks

    host = make_sim_host("a")
    (vm,) = services.create_vms(member, project=project, template=template, name="lost", hold=True)
    real = tasks.enqueue_step
    monkeypatch.setattr(tasks, "enqueue_step", lambda vm: None)  # the broker drops the step's message
    services.perform_action(admin_user, vm.pk, services.ActionRequest(action="deploy", host_id=host.pk))
    monkeypatch.setattr(tasks, "enqueue_step", real)
    vm.refresh_from_db()
    assert (vm.state, vm.operation) == (S.PROLOG, "deploy")
    seq = vm.operation_seq

    assert tasks.sweep_stuck()["done"] == 0  # nothing is older than the deadline
    _age(vm.pk, settings)
    assert tasks.sweep_stuck() == {"sweep": "sweep_stuck", "done": 1, "failed": {}}
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING)
    vm.refresh_from_db()
    assert vm.operation == "" and vm.operation_seq == seq
    assert Event.objects.filter(type="virtualmachine.step_redriven", object_id=str(vm.pk)).count() == 1


def test_a_step_nobody_reports_on_fails_with_the_reason(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any
) -> None:
    from compute import tasks

    settings.NEPHELE_STEP_MAX_TRIES = 2
    host = make_sim_host("a")  # no agent runs in this test: every message is lost
    (vm,) = services.create_vms(member, project=project, template=template, name="stuck", hold=True)
    services.perform_action(admin_user, vm.pk, services.ActionRequest(action="deploy", host_id=host.pk))
    for attempt in (1, 2):
        _age(vm.pk, settings)
        tasks.sweep_stuck()
        vm.refresh_from_db()
        assert (vm.state, vm.operation_tries) == (S.PROLOG, attempt)
    _age(vm.pk, settings)
    tasks.sweep_stuck()
    vm.refresh_from_db()
    assert vm.state == S.PROLOG_FAILURE
    assert "step PROLOG made no progress in 3 ×" in vm.last_error
