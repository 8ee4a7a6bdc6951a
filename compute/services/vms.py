"""The only code that changes VM state (CONVENTIONS §2).

Views, API views, the admin, periodic tasks and agents all call these functions. Each one
locks the VM row, checks the allowed-from table in ``states.py``, records the audit row and
the state change, and queues driver work after commit. Tasks report back through
``complete_step``; the reconciliation loop through ``observe_domain``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.audit import record_action
from monitoring.events import emit
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from portal.events import publish_vm
from specs import DomainSpec, StepOrder, StepResult
from tenants import quotas
from tenants.models import Project
from tenants.querysets import is_cloud_admin

from .. import capacity, hooks
from ..locking import lock_vm
from ..models import (
    MAX_DISK_GB,
    MAX_MEMORY_MB,
    MAX_VCPU,
    Host,
    VirtualMachine,
    VMPlacement,
    VMStateChange,
    VMTemplate,
)
from ..states import (
    ACTIONS,
    FAILURE_OF_STEP,
    FAILURES,
    NOT_RUNNING,
    ON_HOST,
    RECOVER_OPTIONS,
    STEP_OF_FAILURE,
    TRANSIENT,
    Action,
    HostState,
)
from ..states import VMState as S
from . import context

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _lock_vm(actor: Any, vm_id: int, action: str = "manage") -> VirtualMachine:
    return lock_vm(actor, vm_id, action)


def _account(vm: VirtualMachine, old: str, new: str, check: bool) -> None:
    """Keep quota usage in step with the state: running VMs, and everything once DONE."""
    if old in NOT_RUNNING and new not in NOT_RUNNING:
        quotas.consume(vm.project, vm.owner, check=check, running_vms=1)
    elif old not in NOT_RUNNING and new in NOT_RUNNING:
        quotas.release(vm.project, vm.owner, running_vms=1)
    if new == S.DONE and old != S.DONE:
        quotas.release(vm.project, vm.owner, vms=1, vcpu=vm.vcpu, memory_mb=vm.memory_mb, system_disk_gb=vm.disk_gb)


def _set_state(vm: VirtualMachine, new: str, reason: str = "", *, check_quota: bool = False, **fields: Any) -> None:
    """Change state (and other fields) of a locked VM, record it, push it after commit.

    ``check_quota``: the change is a user's request to run the VM again (resume, release,
    deploy), so the running-VMs quota is checked, not just counted.
    """
    old = vm.state
    _account(vm, old, new, check_quota)
    vm.state = new
    for key, value in fields.items():
        setattr(vm, key, value)
    if old != new:
        vm.state_changed_at = timezone.now()
        VMStateChange.objects.create(vm=vm, from_state=old, to_state=new, reason=reason[:255])
        emit(f"virtualmachine.state.{new}", vm, from_state=old, reason=reason[:255], host=vm.host_id)
    vm.save()
    if new == S.DONE and old != S.DONE:
        hooks.vm_done(vm)  # storage: volumes detached, images given back; network: leases, IPs
    publish_vm(vm)


def _begin(vm: VirtualMachine, op: str, state: str, reason: str, *, check_quota: bool = False, **args: Any) -> None:
    """Start an asynchronous operation: enter its first transient state and queue the work."""
    from .. import tasks

    _set_state(
        vm,
        state,
        reason,
        previous_state=vm.state if vm.state not in TRANSIENT else vm.previous_state,
        operation=op,
        operation_args=args,
        operation_seq=vm.operation_seq + 1,
        last_error="",
        check_quota=check_quota,
    )
    tasks.enqueue_step(vm)


def _finish(vm: VirtualMachine, state: str, reason: str, **fields: Any) -> None:
    """End the operation in flight in ``state``; give back host capacity if the VM left it."""
    if vm.host_id and state not in ON_HOST:
        capacity.release(vm.host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
        _close_placement(vm, reason=vm.operation or reason)
        fields["host"] = None
    _set_state(vm, state, reason, operation="", operation_args={}, target_host=None, **fields)


def _close_placement(vm: VirtualMachine, reason: str) -> None:
    VMPlacement.objects.filter(vm=vm, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason[:32])


def _check_allowed(actor: Any, vm: VirtualMachine, action: str) -> None:
    spec = ACTIONS[action]
    if spec.admin_only and actor is not None and not is_cloud_admin(actor):
        raise PermissionDenied(f"only cloud administrators may {action} a VM")
    if vm.state not in spec.allowed_from:
        raise Conflict(f"cannot {action} a VM in state {vm.state}", field="state")
    if vm.busy and vm.state not in FAILURES and action != Action.RECOVER:
        raise Conflict(f"cannot {action} a VM while '{vm.operation}' is in progress (state {vm.state})", field="state")


def _validate_capacity(vcpu: int, memory_mb: int, disk_gb: int) -> None:
    if not 1 <= vcpu <= MAX_VCPU:
        raise InvalidInput(f"vcpu must be between 1 and {MAX_VCPU}", field="vcpu")
    if not 16 <= memory_mb <= MAX_MEMORY_MB:
        raise InvalidInput(f"memory_mb must be between 16 and {MAX_MEMORY_MB}", field="memory_mb")
    if not 0 <= disk_gb <= MAX_DISK_GB:
        raise InvalidInput(f"disk_gb must be between 0 and {MAX_DISK_GB}", field="disk_gb")


# --------------------------------------------------------------------------------------------
# creation
# --------------------------------------------------------------------------------------------
@transaction.atomic
def create_vms(
    actor: Any,
    *,
    project: Project,
    template: VMTemplate,
    name: str,
    count: int = 1,
    vcpu: int | None = None,
    memory_mb: int | None = None,
    hold: bool = False,
    ip: str | None = None,
    user_data: str = "",
) -> list[VirtualMachine]:
    """Instantiate ``template`` ``count`` times in ``project``; VMs enter PENDING (or HOLD).

    ``user_data`` goes into each VM's NoCloud seed (≤ 16 KiB; see compute/context.py)."""
    if not Project.objects.restrict(actor, "manage").filter(pk=project.pk).exists():
        raise NotFound("project not found", field="project")
    if not VMTemplate.objects.restrict(actor, "view").filter(pk=template.pk).exists():
        raise NotFound("template not found", field="template")
    if not 1 <= count <= 100:
        raise InvalidInput("count must be between 1 and 100", field="count")
    vcpu = template.vcpu if vcpu is None else vcpu
    memory_mb = template.memory_mb if memory_mb is None else memory_mb
    _validate_capacity(vcpu, memory_mb, template.disk_gb)
    context.validate_user_data(user_data)
    from django.core.exceptions import ValidationError

    from ..models import name_validator

    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
    quotas.consume(
        project,
        actor,
        vms=count,
        running_vms=count,  # HOLD and PENDING count as running, as in OpenNebula
        vcpu=vcpu * count,
        memory_mb=memory_mb * count,
        system_disk_gb=template.disk_gb * count,
    )
    vms = []
    for i in range(count):
        vm = VirtualMachine.objects.create(
            project=project,
            owner=actor,
            name=name if count == 1 else f"{name}-{i}"[:63],
            template=template,
            boot_image=template.boot_image,
            vcpu=vcpu,
            memory_mb=memory_mb,
            disk_gb=template.disk_gb,
            required_labels=template.required_labels,
            restart_policy=template.restart_policy,
            ha=template.ha,
            hypervisor=template.hypervisor,
            cluster=template.cluster,
            state=S.HOLD if hold else S.PENDING,
            user_data=user_data,
        )
        VMStateChange.objects.create(vm=vm, from_state="", to_state=vm.state, reason="created")
        emit(f"virtualmachine.state.{vm.state}", vm, actor=actor, from_state="", reason="created")
        record_action(actor, vm, "create", ip=ip, template=template.pk, vcpu=vcpu, memory_mb=memory_mb)
        publish_vm(vm)
        vms.append(vm)
    hooks.vms_created(actor, vms, template)  # the template's disks (storage), NICs and leases (network)
    if not hold:
        from .. import tasks

        ids = [vm.pk for vm in vms]
        transaction.on_commit(lambda: [tasks.schedule_vm.delay(pk) for pk in ids])
    return vms


# --------------------------------------------------------------------------------------------
# placement (the scheduler's writer)
# --------------------------------------------------------------------------------------------
@transaction.atomic
def place_vm(vm_id: int, *, host_id: int | None = None, actor: Any = None, ip: str | None = None) -> VirtualMachine:
    """Claim capacity for a PENDING VM (on ``host_id``, or where the scheduler ranks best) and deploy it.

    Capacity is claimed by a conditional UPDATE, so concurrent schedulers never overbook. A VM
    that fits nowhere stays PENDING with the reason in ``schedule_message``.
    """
    from ..scheduler.service import rank_for

    vm = _lock_vm(actor, vm_id, "manage")
    if actor is not None:
        _check_allowed(actor, vm, Action.DEPLOY)
    elif vm.state != S.PENDING or vm.busy:
        return vm
    if host_id is not None:
        try:
            host = Host.objects.get(pk=host_id)
        except Host.DoesNotExist:
            raise NotFound("host not found", field="host") from None
        if host.state != HostState.MONITORED:
            raise Conflict(f"host {host.name} is {host.state}, not MONITORED", field="host")
        candidates, reason = [host_id], ""
    else:
        candidates, reason = rank_for(vm)
    for hid in candidates:
        if capacity.claim(hid, vm.vcpu, vm.memory_mb, vm.disk_gb):
            break
    else:
        if host_id is not None:
            raise Conflict("the host has not enough free capacity for this VM", field="host")
        message = reason or "every suitable host was taken by concurrent placements; will retry"
        if vm.schedule_message != message:
            vm.schedule_message = message
            vm.save(update_fields=["schedule_message"])
            publish_vm(vm)
        return vm
    host = Host.objects.get(pk=hid)
    VMPlacement.objects.create(vm=vm, host=host, start_reason="deploy", vcpu=vm.vcpu, memory_mb=vm.memory_mb)
    if actor is not None:
        record_action(actor, vm, "deploy", ip=ip, host=host.name)
    vm.host = host
    vm.schedule_message = ""
    _begin(
        vm, Action.DEPLOY, S.PROLOG, f"placed on {host.name}", check_quota=actor is not None,
        restore=bool(vm.saved_state_path),
    )  # fmt: skip
    return vm


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


@transaction.atomic
def perform_action(actor: Any, vm_id: int, req: ActionRequest, *, ip: str | None = None) -> VirtualMachine:
    """Start ``req.action`` on a VM; raises Conflict (409) when the state does not allow it."""
    if req.action not in ACTIONS:
        raise InvalidInput(f"unknown action {req.action!r}; known: {', '.join(ACTIONS)}", field="action")
    if req.action == Action.DEPLOY:
        return (
            place_vm(vm_id, host_id=req.host_id, actor=actor, ip=ip)
            if req.host_id
            else _deploy_by_scheduler(actor, vm_id, ip)
        )
    vm = _lock_vm(actor, vm_id, "manage")
    _check_allowed(actor, vm, req.action)
    handler = _HANDLERS[Action(req.action)]
    handler(vm, req)
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


def _deploy_by_scheduler(actor: Any, vm_id: int, ip: str | None) -> VirtualMachine:
    """Deploy without a host: release to the scheduler (PENDING) and place now."""
    vm = _lock_vm(actor, vm_id, "manage")
    _check_allowed(actor, vm, Action.DEPLOY)
    if vm.state != S.PENDING:
        _set_state(vm, S.PENDING, "deploy requested", check_quota=True)
    record_action(actor, vm, "deploy", ip=ip)
    return place_vm(vm.pk)


def _hold(vm: VirtualMachine, req: ActionRequest) -> None:
    _set_state(vm, S.HOLD, "hold")


def _release(vm: VirtualMachine, req: ActionRequest) -> None:
    from .. import tasks

    _set_state(vm, S.PENDING, "release", check_quota=True)
    transaction.on_commit(lambda: tasks.schedule_vm.delay(vm.pk))


def _suspend(vm: VirtualMachine, req: ActionRequest) -> None:
    _begin(vm, Action.SUSPEND, S.SAVE, "suspend")


def _resume(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state in (S.STOPPED, S.UNDEPLOYED):
        _release(vm, req)  # back to the scheduler, which may pick another host
        return
    _begin(vm, Action.RESUME, S.BOOT, "resume", check_quota=True)


def _poweroff(vm: VirtualMachine, req: ActionRequest) -> None:
    _begin(vm, Action.POWEROFF, S.SHUTDOWN, "poweroff", hard=req.hard)


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
    _begin(vm, Action.STOP, S.SAVE, "stop")


def _undeploy(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state == S.POWEROFF:
        _begin(vm, Action.UNDEPLOY, S.EPILOG, "undeploy", hard=req.hard)
    else:
        _begin(vm, Action.UNDEPLOY, S.SHUTDOWN, "undeploy", hard=req.hard)


def _terminate(vm: VirtualMachine, req: ActionRequest) -> None:
    if vm.state in (S.PENDING, S.HOLD, S.STOPPED, S.UNDEPLOYED) and not vm.host_id:
        _finish(vm, S.DONE, "terminate", saved_state_path="")
    elif vm.state in (S.RUNNING, S.UNKNOWN):
        _begin(vm, Action.TERMINATE, S.SHUTDOWN, "terminate", hard=req.hard)
    else:
        _begin(vm, Action.TERMINATE, S.EPILOG, "terminate", hard=True)


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
    _begin(vm, Action.MIGRATE, S.MIGRATE, f"migrate to {vm.target_host.name}", live=req.live)


def _resize(vm: VirtualMachine, req: ActionRequest) -> None:
    vcpu = vm.vcpu if req.vcpu is None else req.vcpu
    memory_mb = vm.memory_mb if req.memory_mb is None else req.memory_mb
    _validate_capacity(vcpu, memory_mb, vm.disk_gb)
    quotas.consume(vm.project, vm.owner, vcpu=vcpu - vm.vcpu, memory_mb=memory_mb - vm.memory_mb)
    if vm.host_id:  # POWEROFF keeps its host: the difference must fit there
        dv, dm = vcpu - vm.vcpu, memory_mb - vm.memory_mb
        if not capacity.adjust(vm.host_id, dv, dm):
            raise Conflict(f"host has not enough free capacity for +{dv} vCPU / +{dm} MiB", field="vcpu")
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
        _finish(vm, S.DONE, "recover delete", saved_state_path="")
        if host is not None:
            transaction.on_commit(lambda: tasks.cleanup_domain.apply_async((host.pk, vm.domain_name), queue=host.queue))
        return
    if how == "retry":
        step = STEP_OF_FAILURE.get(vm.state, vm.state)
        _set_state(vm, step, "recover retry", operation_seq=vm.operation_seq + 1, last_error="")
        tasks.enqueue_step(vm)
        return
    if vm.state in FAILURES:
        step = STEP_OF_FAILURE[vm.state]
        if how == "success":
            vm.state = step  # as if the failed step had worked
            _advance(vm, StepResult(ok=True), reason="recover success")
        else:  # give up the operation: back where the VM was before it
            _fail_back(vm, "recover failure")
        return
    _advance(vm, StepResult(ok=how == "success", error="recovered by an administrator"), reason=f"recover {how}")


def _fail_back(vm: VirtualMachine, reason: str) -> None:
    """Abandon the operation in flight and return to the state before it."""
    if vm.target_host_id:
        capacity.release(vm.target_host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
    _finish(vm, vm.previous_state or S.POWEROFF, reason)


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


# --------------------------------------------------------------------------------------------
# driver steps: what the agent should do next, and what it reports back
# --------------------------------------------------------------------------------------------
def domain_spec(vm: VirtualMachine) -> DomainSpec:
    """The domain definition for ``vm``."""
    img = vm.boot_image
    # kernel / ramdisk images of its template (storage), unless a compute boot image boots it
    boot = ("", "", "") if img else next((b for b in hooks.boot_files(vm) if b), ("", "", ""))
    seed = context.seed_path(vm)
    serial_log = ""
    if vm.host is not None and not vm.host.uri.startswith("test:"):
        serial_log = str(settings.NEPHELE_STATE_DIR / "consoles" / f"{vm.domain_name}.log")
    return DomainSpec(
        name=vm.domain_name,
        title=vm.name,
        uuid=str(vm.uuid),
        vcpu=vm.vcpu,
        memory_mb=vm.memory_mb,
        kernel=img.kernel_path if img else boot[0],
        initrd=img.initrd_path if img else boot[1],
        cmdline=img.cmdline.replace("{vm_name}", str(vm.pk)) if img else boot[2],
        disk_path=img.disk_path if img else "",
        serial_log=serial_log,
        metadata={"vm": str(vm.pk), "project": str(vm.project_id), "owner": vm.owner.username},
        disks=(*(d for specs in hooks.disk_specs(vm) for d in specs), context.seed_disk(seed)),
        nics=tuple(n for specs in hooks.nic_specs(vm) for n in specs),
        context=context.context_spec(vm),
        context_path=seed,
    )


def step_order(vm_id: int, seq: int) -> StepOrder | None:
    """What to do for ``vm_id`` at operation ``seq``; None when the order is stale (idempotency)."""
    vm = VirtualMachine.objects.select_related("host", "target_host", "boot_image", "owner").filter(pk=vm_id).first()
    if vm is None or vm.operation_seq != seq or not vm.operation or vm.host is None:
        return None
    if vm.state not in TRANSIENT and vm.operation != Action.REBOOT:
        return None
    args = vm.operation_args or {}
    dest = vm.target_host
    return StepOrder(
        vm_id=vm.pk,
        seq=seq,
        operation=vm.operation,
        step=vm.state,
        driver=vm.host.driver,
        uri=vm.host.uri,
        domain=domain_spec(vm),
        hard=bool(args.get("hard")),
        live=bool(args.get("live")),
        restore_path=vm.saved_state_path if args.get("restore") else "",
        save_path=str(settings.NEPHELE_STATE_DIR / "saved" / f"{vm.domain_name}.save"),
        dest_driver=dest.driver if dest else "",
        dest_uri=dest.uri if dest else "",
        was_running=vm.previous_state not in (S.POWEROFF,),
        shutdown_timeout=float(settings.NEPHELE_SHUTDOWN_TIMEOUT),
    )


# What comes after each successful step, per operation.
_NEXT: dict[tuple[str, str], str] = {
    (Action.DEPLOY, S.PROLOG): S.BOOT,
    (Action.DEPLOY, S.BOOT): S.RUNNING,
    (Action.RESUME, S.BOOT): S.RUNNING,
    (Action.SUSPEND, S.SAVE): S.SUSPENDED,
    (Action.STOP, S.SAVE): S.EPILOG,
    (Action.STOP, S.EPILOG): S.STOPPED,
    (Action.POWEROFF, S.SHUTDOWN): S.POWEROFF,
    (Action.UNDEPLOY, S.SHUTDOWN): S.EPILOG,
    (Action.UNDEPLOY, S.EPILOG): S.UNDEPLOYED,
    (Action.TERMINATE, S.SHUTDOWN): S.EPILOG,
    (Action.TERMINATE, S.EPILOG): S.DONE,
    (Action.REBOOT, S.RUNNING): S.RUNNING,
}


@transaction.atomic
def complete_step(vm_id: int, seq: int, result: StepResult, *, chained: bool = False) -> VirtualMachine | None:
    """The agent reports a step's result; the VM moves on (or into a failure state).

    ``chained``: the reporting agent carries on with the next step itself (one task per
    operation, no broker round trip per step), so nothing is queued for it.
    """
    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.operation_seq != seq or not vm.operation:
        return None  # stale report: an administrator or a newer operation took over
    _advance(vm, result, reason=result.error or f"{vm.operation}: {vm.state} done", enqueue=not chained)
    return vm


def _advance(vm: VirtualMachine, result: StepResult, *, reason: str, enqueue: bool = True) -> None:
    from .. import tasks

    fields: dict[str, Any] = {}
    if result.hv_state:
        fields["hv_state"] = result.hv_state
    op, step = vm.operation, vm.state
    if not result.ok:
        fields["last_error"] = result.error[:2000]
        if step in (S.SHUTDOWN, S.SAVE) or op == Action.REBOOT:
            # as OpenNebula: a shutdown that times out leaves the VM running
            _finish(vm, S.RUNNING, reason, **fields)
        elif step == S.MIGRATE and vm.operation_args.get("live"):
            _fail_back(vm, reason)
            VirtualMachine.objects.filter(pk=vm.pk).update(last_error=result.error[:2000])
        elif step in FAILURE_OF_STEP:
            _set_state(vm, FAILURE_OF_STEP[step], reason, **fields)
        else:
            _finish(vm, vm.previous_state or S.UNKNOWN, reason, **fields)
        return
    if result.saved_path:
        fields["saved_state_path"] = result.saved_path
    if step == S.MIGRATE:
        assert vm.target_host_id is not None and vm.host_id is not None
        capacity.release(vm.host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
        _close_placement(vm, "migrate")
        VMPlacement.objects.create(
            vm=vm, host_id=vm.target_host_id, start_reason="migrate", vcpu=vm.vcpu, memory_mb=vm.memory_mb
        )
        back = S.RUNNING if vm.previous_state in (S.RUNNING, S.UNKNOWN) else vm.previous_state
        _set_state(
            vm, back, reason, host_id=vm.target_host_id, target_host=None, operation="", operation_args={}, **fields
        )
        return
    nxt = _NEXT.get((op, step))
    if nxt is None:
        log.error("no next state for operation %s at %s (vm %s)", op, step, vm.pk)
        _set_state(vm, FAILURE_OF_STEP.get(step, S.UNKNOWN), f"internal: no step after {step}", **fields)
        return
    if nxt in TRANSIENT:
        _set_state(vm, nxt, reason, **fields)
        if enqueue:
            tasks.enqueue_step(vm)
        return
    if nxt in (S.DONE, S.UNDEPLOYED):
        fields["saved_state_path"] = ""
    if nxt == S.RUNNING and op == Action.DEPLOY:
        fields["saved_state_path"] = ""
    _finish(vm, nxt, reason, **fields)
