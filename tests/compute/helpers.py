"""Drive VMs through real services and the real libvirt test driver, without the Celery hop.

``settle`` plays the agent's part in-process: it carries out every pending driver step with
``compute.agent.execute`` (real libvirt calls) and reports through ``services.complete_step``,
and places PENDING VMs with the real scheduler. The Celery path itself is tested in
``test_api_celery.py``.
"""

from __future__ import annotations

from typing import Any

from compute import agent, services
from compute.drivers.registry import get_driver
from compute.models import VirtualMachine
from compute.states import TRANSIENT, Action
from compute.states import VMState as S


def settle(schedule: bool = True, rounds: int = 20) -> None:
    for _ in range(rounds):
        progressed = False
        for vm in VirtualMachine.objects.exclude(state=S.DONE).order_by("pk"):
            if vm.operation and (vm.state in TRANSIENT or vm.operation == Action.REBOOT):
                order = services.step_order(vm.pk, vm.operation_seq)
                if order is not None:
                    services.complete_step(vm.pk, vm.operation_seq, agent.execute(order), chained=True)
                    progressed = True
            elif schedule and vm.state == S.PENDING and not vm.schedule_message:
                progressed |= services.place_vm(vm.pk).state != S.PENDING
        if not progressed:
            return


def act(user: Any, vm: VirtualMachine, action: str, **kw: Any) -> VirtualMachine:
    return services.perform_action(user, vm.pk, services.ActionRequest(action=action, **kw))


def drive_to(state: str, *, user: Any, admin: Any, project: Any, template: Any) -> VirtualMachine:
    """A VM brought into ``state`` by real actions (failure states: a step reported failed)."""
    hold = state == S.HOLD
    (vm,) = services.create_vms(user, project=project, template=template, name=f"vm-{state.lower()}", hold=hold)
    if state in (S.PENDING, S.HOLD):
        return VirtualMachine.objects.get(pk=vm.pk)
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING, (vm.state, vm.schedule_message, vm.last_error)
    recipe = {
        S.SUSPENDED: Action.SUSPEND,
        S.POWEROFF: Action.POWEROFF,
        S.STOPPED: Action.STOP,
        S.UNDEPLOYED: Action.UNDEPLOY,
        S.DONE: Action.TERMINATE,
    }
    if state in recipe:
        act(user, vm, recipe[state])
        settle(schedule=False)
    elif state == S.UNKNOWN:
        # the domain vanishes behind Nephele's back; reconciliation notices
        assert vm.host is not None
        drv = get_driver(vm.host.driver, vm.host.uri)
        drv.destroy(vm.domain_name)
        drv.undefine(vm.domain_name)
        services.reconcile(vm.host.pk, drv.list_domains())
    elif state == S.BOOT_FAILURE:
        act(user, vm, Action.POWEROFF)
        settle(schedule=False)
        _fail_next_step(vm, Action.RESUME)
    elif state == S.EPILOG_FAILURE:
        _fail_next_step(vm, Action.TERMINATE, hard=True)
    elif state != S.RUNNING:
        raise ValueError(f"no recipe for {state}")
    vm.refresh_from_db()
    assert vm.state == state, (vm.state, vm.last_error)
    return vm


def _fail_next_step(vm: VirtualMachine, action: str, **kw: Any) -> None:
    """Start ``action`` and report its first step as failed, as a broken hypervisor would."""
    act(None, vm, action, **kw)
    vm.refresh_from_db()
    while vm.state in TRANSIENT and vm.state not in (S.BOOT, S.EPILOG):
        settle(schedule=False, rounds=1)
        vm.refresh_from_db()
    services.complete_step(vm.pk, vm.operation_seq, services.StepResult(ok=False, error="injected driver failure"))
