"""User and administrator actions on a VM, checked against the allowed-from table in
``compute/states.py`` (a refused action is a 409)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from monitoring.audit import record_action
from portal.errors import Conflict, InvalidInput
from portal.events import publish_vm
from specs import StepResult
from tenants import quotas
from tenants.querysets import Actor

from .. import capacity
from ..models import (
    Host,
    VirtualMachine,
)
from ..states import (
    ACTIONS,
    FAILURES,
    RECOVER_OPTIONS,
    STEP_OF_FAILURE,
    Action,
    HostState,
)
from ..states import VMState as S
from .lifecycle import begin, check_allowed, fail_back, finish, lock, set_state, validate_capacity
from .placement import place_vm
from .steps import advance

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# user actions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionRequest:
    """An action as the UI or API asks for it."""

    action: str
    hard: bool = False
    live: bool = False
    host_id: int | None = None
    recover: str = ""
    vcpu: int | None = None
    memory_mb: int | None = None
    #: the VM's ``version`` the client saw (API ``version`` or ``If-Match``, the resize form):
    #: when it changed meanwhile the action is refused with 409 (optimistic concurrency)
    version: int | None = None


@transaction.atomic
def perform_action(actor: Actor, vm_id: int, req: ActionRequest, *, ip: str | None = None) -> VirtualMachine:
    """Start ``req.action`` on a VM; raises Conflict (409) when the state does not allow it."""
    if req.action not in ACTIONS:
        raise InvalidInput(f"unknown action {req.action!r}; known: {', '.join(ACTIONS)}", field="action")
    if req.action == Action.DEPLOY:
        return (
            place_vm(vm_id, host_id=req.host_id, actor=actor, ip=ip)
            if req.host_id
            else _deploy_by_scheduler(actor, vm_id, ip)
        )
    vm = lock(actor, vm_id, "manage")
    if req.version is not None and req.version != vm.version:
        raise Conflict(
            f"the VM changed since version {req.version} (now {vm.version}); reload it and retry", field="version"
        )
    check_allowed(actor, vm, req.action)
    handler = _HANDLERS[Action(req.action)]
    handler(vm, req)
    VirtualMachine.objects.filter(pk=vm.pk).update(version=F("version") + 1)
    vm.version += 1
    record_action(actor, vm, req.action, ip=ip, hard=req.hard, state=vm.state, **_extra(req))
    return vm


def _extra(req: ActionRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.recover:
        out["recover"] = req.recover
    if req.host_id:
        out["host"] = req.host_id
    if req.live:
        out["live"] = True
    if req.vcpu is not None:
        out["vcpu"] = req.vcpu
    if req.memory_mb is not None:
        out["memory_mb"] = req.memory_mb
    return out


def _deploy_by_scheduler(actor: Actor, vm_id: int, ip: str | None) -> VirtualMachine:
    """Deploy without a host: release to the scheduler (PENDING) and place now."""
    vm = lock(actor, vm_id, "manage")
    check_allowed(actor, vm, Action.DEPLOY)
    if vm.state != S.PENDING:
        set_state(vm, S.PENDING, "deploy requested", check_quota=True)
    record_action(actor, vm, "deploy", ip=ip)
    return place_vm(vm.pk)


def _hold(vm: VirtualMachine, req: ActionRequest) -> None:
    set_state(vm, S.HOLD, "hold")


def _release(vm: VirtualMachine, req: ActionRequest) -> None:
    from .. import tasks

    set_state(vm, S.PENDING, "release", check_quota=True)
    transaction.on_commit(lambda: tasks.schedule_vm.delay(vm.pk))


def _suspend(vm: VirtualMachine, req: ActionRequest) -> None:
    begin(vm, Action.SUSPEND, S.SAVE, "suspend")


def _resume(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state in (S.STOPPED, S.UNDEPLOYED):
        _release(vm, req)  # back to the scheduler, which may pick another host
        return
    begin(vm, Action.RESUME, S.BOOT, "resume", check_quota=True)


def _poweroff(vm: VirtualMachine, req: ActionRequest) -> None:
    begin(vm, Action.POWEROFF, S.SHUTDOWN, "poweroff", hard=req.hard)


def _reboot(vm: VirtualMachine, req: ActionRequest) -> None:
    from .. import tasks

    vm.operation = Action.REBOOT
    vm.operation_args = {"hard": req.hard}
    vm.operation_seq += 1
    vm.previous_state = vm.state
    vm.save()
    publish_vm(vm)
    tasks.enqueue_step(vm)


def _stop(vm: VirtualMachine, req: ActionRequest) -> None:
    begin(vm, Action.STOP, S.SAVE, "stop")


def _undeploy(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state == S.POWEROFF:
        begin(vm, Action.UNDEPLOY, S.EPILOG, "undeploy", hard=req.hard)
    else:
        begin(vm, Action.UNDEPLOY, S.SHUTDOWN, "undeploy", hard=req.hard)


def _terminate(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state in (S.PENDING, S.HOLD, S.STOPPED, S.UNDEPLOYED) and not vm.host_id:
        finish(vm, S.DONE, "terminate", saved_state_path="")
    elif vm.state in (S.RUNNING, S.UNKNOWN):
        begin(vm, Action.TERMINATE, S.SHUTDOWN, "terminate", hard=req.hard)
    else:
        begin(vm, Action.TERMINATE, S.EPILOG, "terminate", hard=True)


def _migrate(vm: VirtualMachine, req: ActionRequest) -> None:
    from ..drivers.registry import capabilities as driver_capabilities
    from ..scheduler.service import rank_for

    assert vm.host is not None
    if req.live:
        if vm.state != S.RUNNING:
            raise Conflict(f"live migration needs a RUNNING VM, this one is {vm.state}", field="state")
        caps = driver_capabilities(vm.host.driver, vm.host.uri)
        if not caps.get("live_migrate"):
            raise Conflict(f"host {vm.host.name} ({vm.host.uri.split(':')[0]}) cannot migrate live", field="live")
    if req.host_id is not None:
        if req.host_id == vm.host_id:
            raise InvalidInput("the VM already runs on that host", field="host")
        candidates = [req.host_id]
        if not Host.objects.filter(pk=req.host_id, state=HostState.MONITORED).exists():
            raise Conflict("the target host is not MONITORED", field="host")
    else:
        ranked, reason = rank_for(vm, exclude=vm.host_id)
        if not ranked:
            raise Conflict(f"no host to migrate to: {reason}", field="host")
        candidates = ranked
    for hid in candidates:
        if capacity.claim(hid, vm.vcpu, vm.memory_mb, vm.disk_gb):
            break
    else:
        raise Conflict("no target host has room for this VM", field="host")
    vm.target_host = Host.objects.get(pk=hid)
    begin(vm, Action.MIGRATE, S.MIGRATE, f"migrate to {vm.target_host.name}", live=req.live)


def _resize(vm: VirtualMachine, req: ActionRequest) -> None:
    vcpu = vm.vcpu if req.vcpu is None else req.vcpu
    memory_mb = vm.memory_mb if req.memory_mb is None else req.memory_mb
    validate_capacity(vcpu, memory_mb, vm.disk_gb)
    if vm.host_id:  # POWEROFF keeps its host: the difference must fit there
        dv, dm = vcpu - vm.vcpu, memory_mb - vm.memory_mb
        if not capacity.adjust(vm.host_id, dv, dm):
            raise Conflict(f"host has not enough free capacity for +{dv} vCPU / +{dm} MiB", field="vcpu")
    # Quota rows come last, after the VM and host rows (the one lock order, tenants/quotas.py).
    quotas.consume(vm.project, vm.owner, vcpu=vcpu - vm.vcpu, memory_mb=memory_mb - vm.memory_mb)
    vm.vcpu, vm.memory_mb = vcpu, memory_mb
    vm.save(update_fields=["vcpu", "memory_mb"])
    publish_vm(vm)


def _recover(vm: VirtualMachine, req: ActionRequest) -> None:
    from .. import tasks

    how = req.recover
    if how not in RECOVER_OPTIONS:
        raise InvalidInput(f"recover must be one of {', '.join(RECOVER_OPTIONS)}", field="recover")
    if how == "delete":
        if vm.target_host_id:
            capacity.release(vm.target_host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
        host = vm.host
        finish(vm, S.DONE, "recover delete", saved_state_path="")
        if host is not None:
            transaction.on_commit(lambda: tasks.cleanup_domain(host, vm.domain_name))
        return
    if how == "retry":
        step = STEP_OF_FAILURE.get(vm.state, vm.state)
        set_state(vm, step, "recover retry", operation_seq=vm.operation_seq + 1, last_error="")
        tasks.enqueue_step(vm)
        return
    if vm.state in FAILURES:
        step = STEP_OF_FAILURE[vm.state]
        if how == "success":
            vm.state = step  # as if the failed step had worked
            advance(vm, StepResult(ok=True), reason="recover success")
        else:  # give up the operation: back where the VM was before it
            fail_back(vm, "recover failure")
        return
    advance(vm, StepResult(ok=how == "success", error="recovered by an administrator"), reason=f"recover {how}")


_HANDLERS = {
    Action.HOLD: _hold,
    Action.RELEASE: _release,
    Action.SUSPEND: _suspend,
    Action.RESUME: _resume,
    Action.POWEROFF: _poweroff,
    Action.REBOOT: _reboot,
    Action.STOP: _stop,
    Action.UNDEPLOY: _undeploy,
    Action.TERMINATE: _terminate,
    Action.MIGRATE: _migrate,
    Action.RESIZE: _resize,
    Action.RECOVER: _recover,
}
