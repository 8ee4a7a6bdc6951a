"""The VM state machine's primitives: lock, change state (with quota, audit trail, events and
browser pushes), begin and finish an asynchronous operation.

Every VM service (create, placement, actions, steps, hosts, observation) changes state through
these, so accounting and pushes happen in one place (CONVENTIONS §2).
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from monitoring.events import emit
from portal import bulk, operations
from portal.errors import InvalidInput
from portal.events import publish_vm
from tenants import quotas
from tenants.querysets import Actor, is_cloud_admin

from .. import capacity, hooks
from ..locking import lock_vm
from ..models import (
    MAX_DISK_GB,
    MAX_MEMORY_MB,
    MAX_VCPU,
    VirtualMachine,
    VMPlacement,
    VMStateChange,
)
from ..states import (
    NOT_RUNNING,
    ON_HOST,
    TABLE,
    TRANSIENT,
)
from ..states import VMState as S

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def lock(actor: Actor, vm_id: int, action: str = "manage") -> VirtualMachine:
    return lock_vm(actor, vm_id, action)


def account(vm: VirtualMachine, old: str, new: str, check: bool) -> None:
    """Keep quota usage in step with the state: running VMs, and everything once DONE."""
    if old in NOT_RUNNING and new not in NOT_RUNNING:
        quotas.consume(vm.project, vm.owner, check=check, running_vms=1)
    elif old not in NOT_RUNNING and new in NOT_RUNNING:
        quotas.release(vm.project, vm.owner, running_vms=1)
    if new == S.DONE and old != S.DONE:
        quotas.release(vm.project, vm.owner, vms=1, vcpu=vm.vcpu, memory_mb=vm.memory_mb, system_disk_gb=vm.disk_gb)


def set_state(vm: VirtualMachine, new: str, reason: str = "", *, check_quota: bool = False, **fields: Any) -> None:
    """Change state (and other fields) of a locked VM, record it, push it after commit.

    ``check_quota``: the change is a user's request to run the VM again (resume, release,
    deploy), so the running-VMs quota is checked, not just counted.
    """
    old = vm.state
    account(vm, old, new, check_quota)
    vm.state = new
    for key, value in fields.items():
        setattr(vm, key, value)
    if old != new:
        vm.version += 1
        vm.state_changed_at = timezone.now()
        if new in TRANSIENT and vm.operation:
            operations.progressed(vm)
        bulk.add(VMStateChange(vm=vm, from_state=old, to_state=new, reason=reason[:255]))
        emit(f"virtualmachine.state.{new}", vm, from_state=old, reason=reason[:255], host=vm.host_id)
    vm.save()
    if new == S.DONE and old != S.DONE:
        hooks.vm_done(vm)  # storage: volumes detached, images given back; network: leases, IPs
    publish_vm(vm)


def begin(vm: VirtualMachine, op: str, state: str, reason: str, *, check_quota: bool = False, **args: Any) -> None:
    """Start an asynchronous operation: enter its first transient state and queue the work."""
    from .. import tasks

    operations.begin(
        vm, op, state, write=set_state, reason=reason, keep_previous=TRANSIENT, args=args,
        last_error="", check_quota=check_quota,
    )  # fmt: skip
    tasks.enqueue_step(vm)


def finish(vm: VirtualMachine, state: str, reason: str, **fields: Any) -> None:
    """End the operation in flight in ``state``; give back host capacity if the VM left it."""
    if vm.host_id and state not in ON_HOST:
        capacity.release(vm.host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
        close_placement(vm, reason=vm.operation or reason)
        fields["host"] = None
    operations.finish(vm, state, write=set_state, reason=reason, target_host=None, **fields)


def close_placement(vm: VirtualMachine, reason: str) -> None:
    VMPlacement.objects.filter(vm=vm, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason[:32])


def check_allowed(actor: Actor, vm: VirtualMachine, action: str) -> None:
    """403 / 409 unless ``actor`` (None: the system) may start ``action`` on ``vm`` now (states.TABLE)."""
    TABLE.require(action, vm, noun="a VM", admin=actor is None or is_cloud_admin(actor))


def validate_capacity(vcpu: int, memory_mb: int, disk_gb: int) -> None:
    if not 1 <= vcpu <= MAX_VCPU:
        raise InvalidInput(f"vcpu must be between 1 and {MAX_VCPU}", field="vcpu")
    if not 16 <= memory_mb <= MAX_MEMORY_MB:
        raise InvalidInput(f"memory_mb must be between 16 and {MAX_MEMORY_MB}", field="memory_mb")
    if not 0 <= disk_gb <= MAX_DISK_GB:
        raise InvalidInput(f"disk_gb must be between 0 and {MAX_DISK_GB}", field="disk_gb")


def fail_back(vm: VirtualMachine, reason: str) -> None:
    """Abandon the operation in flight and return to the state before it."""
    if vm.target_host_id:
        capacity.release(vm.target_host_id, vm.vcpu, vm.memory_mb, vm.disk_gb)
    finish(vm, vm.previous_state or S.POWEROFF, reason)
