"""Driver steps: what a host agent should do next (a plain ``StepOrder``), and what it reports
back (``complete_step``; a stale sequence number is ignored)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from specs import DomainSpec, StepOrder, StepResult

from .. import capacity, hooks
from ..models import (
    VirtualMachine,
    VMPlacement,
)
from ..states import (
    FAILURE_OF_STEP,
    TRANSIENT,
    Action,
)
from ..states import VMState as S
from . import context
from .console import console_log_path
from .lifecycle import close_placement, fail_back, finish, set_state

log = logging.getLogger(__name__)


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
        serial_log = str(console_log_path(vm))
    return DomainSpec(
        name=vm.domain_name,
        title=vm.name,
        uuid=str(vm.uuid),
        vcpu=vm.vcpu,
        memory_mb=vm.memory_mb,
        kernel=img.kernel_path if img else boot[0],
        initrd=img.initrd_path if img else boot[1],
        cmdline=img.cmdline.replace("{vm_name}", str(vm.pk)) if img else boot[2],
        # a disk boot image is attached as storage's per-VM overlay on it (in ``disks``, vda), never itself
        disk_path="",
        serial_log=serial_log,
        graphics=bool(vm.template is not None and vm.template.graphics),
        graphics_listen=settings.NEPHELE_VNC_LISTEN,
        metadata={"vm": str(vm.pk), "project": str(vm.project_id), "owner": vm.owner.username},
        disks=(*(d for specs in hooks.disk_specs(vm) for d in specs), context.seed_disk(seed)),
        nics=tuple(n for specs in hooks.nic_specs(vm) for n in specs),
        context=context.context_spec(vm),
        context_path=seed,
    )


_ORDER_RELATED = ("host", "target_host", "boot_image", "owner", "template")


def step_order(vm_id: int, seq: int) -> StepOrder | None:
    """What to do for ``vm_id`` at operation ``seq``; None when the order is stale (idempotency)."""
    return step_orders([(vm_id, seq)])[0]


def step_orders(steps: list[tuple[int, int]]) -> list[StepOrder | None]:
    """``step_order`` of many (vm, seq) at once — the outbox relays a commit's step orders
    together: one query for the VMs, one per manager for what their specs read
    (``hooks.specs_prefetch``), one for the owners' keys."""
    vms = {
        vm.pk: vm for vm in VirtualMachine.objects.select_related(*_ORDER_RELATED).filter(pk__in={v for v, _ in steps})
    }
    live = [vm for vm_id, seq in steps if (vm := vms.get(vm_id)) is not None and _current(vm, seq)]
    if len(live) > 1:
        hooks.specs_prefetch(live)
        context.prefetch_keys(live)
    return [_order(vms[vm_id], seq) if vm_id in vms and _current(vms[vm_id], seq) else None for vm_id, seq in steps]


def _current(vm: VirtualMachine, seq: int) -> bool:
    if vm.operation_seq != seq or not vm.operation or vm.host is None:
        return False
    return vm.state in TRANSIENT or vm.operation == Action.REBOOT


def _order(vm: VirtualMachine, seq: int) -> StepOrder:
    assert vm.host is not None
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
def complete_step(
    vm_id: int, seq: int, result: StepResult, *, chained: bool = False, step: str = ""
) -> VirtualMachine | None:
    """The agent reports a step's result; the VM moves on (or into a failure state).

    ``chained``: the reporting agent carries on with the next step itself (one task per
    operation, no broker round trip per step), so nothing is queued for it. ``step``: the step
    reported on; every step of an operation shares ``seq``, so a report of an earlier step (a
    redelivered message) is refused.
    """
    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.operation_seq != seq or not vm.operation:
        return None  # stale report: an administrator or a newer operation took over
    if step and vm.state != step:
        return None  # a late or repeated report of a step the VM has moved past (same seq)
    advance(vm, result, reason=result.error or f"{vm.operation}: {vm.state} done", enqueue=not chained)
    return vm


def advance(vm: VirtualMachine, result: StepResult, *, reason: str, enqueue: bool = True) -> None:
    from .. import tasks

    fields: dict[str, Any] = {}
    if result.hv_state:
        fields["hv_state"] = result.hv_state
    op, step = vm.operation, vm.state
    if not result.ok:
        # named after the action the user started, so the row's badge and the toast say what failed
        error = f"{Action(op).label if op in Action.values else op} failed: {result.error}" if op else result.error
        fields["last_error"] = error[:2000]
        if step in (S.SHUTDOWN, S.SAVE) or op == Action.REBOOT:
            # as OpenNebula: a shutdown that times out leaves the VM running
            finish(vm, S.RUNNING, reason, **fields)
        elif step == S.MIGRATE and vm.operation_args.get("live"):
            fail_back(vm, reason)
            VirtualMachine.objects.filter(pk=vm.pk).update(last_error=error[:2000])
        elif step in FAILURE_OF_STEP:
            set_state(vm, FAILURE_OF_STEP[step], reason, **fields)
        else:
            finish(vm, vm.previous_state or S.UNKNOWN, reason, **fields)
        return
    if result.saved_path:
        fields["saved_state_path"] = result.saved_path
    if step == S.MIGRATE:
        assert vm.target_host_id is not None and vm.host_id is not None
        capacity.release(vm.host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
        close_placement(vm, "migrate")
        VMPlacement.objects.create(
            vm=vm, host_id=vm.target_host_id, start_reason="migrate", vcpu=vm.vcpu, memory_mb=vm.memory_mb
        )
        back = S.RUNNING if vm.previous_state in (S.RUNNING, S.UNKNOWN) else vm.previous_state
        set_state(
            vm, back, reason, host_id=vm.target_host_id, target_host=None, operation="", operation_args={}, **fields
        )
        return
    nxt = _NEXT.get((op, step))
    if nxt is None:
        log.error("no next state for operation %s at %s (vm %s)", op, step, vm.pk)
        set_state(vm, FAILURE_OF_STEP.get(step, S.UNKNOWN), f"internal: no step after {step}", **fields)
        return
    if nxt in TRANSIENT:
        set_state(vm, nxt, reason, **fields)
        if enqueue:
            tasks.enqueue_step(vm)
        return
    if nxt in (S.DONE, S.UNDEPLOYED):
        fields["saved_state_path"] = ""
    if nxt == S.RUNNING and op == Action.DEPLOY:
        fields["saved_state_path"] = ""
    finish(vm, nxt, reason, **fields)
