"""Placement: the scheduler's writer (claim capacity, deploy)."""

from __future__ import annotations

import logging

from django.db import transaction

from monitoring.audit import record_action
from portal import bulk
from portal.errors import Conflict, NotFound
from portal.events import publish_vm
from tenants.querysets import Actor

from .. import capacity
from ..models import (
    Host,
    VirtualMachine,
    VMPlacement,
)
from ..states import (
    Action,
    HostState,
)
from ..states import VMState as S
from .lifecycle import begin, check_allowed, lock

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# placement (the scheduler's writer)
# --------------------------------------------------------------------------------------------
@transaction.atomic
def place_vm(
    vm_id: int,
    *,
    host_id: int | None = None,
    actor: Actor = None,
    ip: str | None = None,
    ranked: tuple[list[int], str] | None = None,
) -> VirtualMachine:
    """Claim capacity for a PENDING VM (on ``host_id``, or where the scheduler ranks best) and deploy it.

    Capacity is claimed by a conditional UPDATE, so concurrent schedulers never overbook. A VM
    that fits nowhere stays PENDING with the reason in ``schedule_message``. ``ranked`` is the
    hosts best-first from a batch ranking (``scheduler.service.rank_batch``), else the VM is
    ranked on its own.
    """
    vm = lock(actor, vm_id, "manage")
    return _place(vm, host_id=host_id, actor=actor, ip=ip, ranked=ranked)


@transaction.atomic(savepoint=False)  # the sweep gives each VM its savepoint
def place_pending(
    vm_id: int, ranked: tuple[list[int], str] | None, hosts: dict[int, Host] | None = None
) -> VirtualMachine | None:
    """The system's sweep: ``place_vm`` for a PENDING VM, except that a VM another transaction
    holds is left alone (None) rather than waited for — a sweep holding the host claims of its
    chunk never waits on a VM row, so it forms no lock cycle with a single placement (which
    locks its VM first and a host second). ``hosts``: the pass's host rows by id, filled as they
    are first used (their names and queues; capacity is claimed in the database)."""
    vm = (
        VirtualMachine.objects.select_related("host", "project", "cluster")
        .select_for_update(of=("self",), skip_locked=True)
        .filter(pk=vm_id)
        .first()
    )
    return None if vm is None else _place(vm, ranked=ranked, hosts=hosts)


def _place(
    vm: VirtualMachine,
    *,
    host_id: int | None = None,
    actor: Actor = None,
    ip: str | None = None,
    ranked: tuple[list[int], str] | None = None,
    hosts: dict[int, Host] | None = None,
) -> VirtualMachine:
    from ..scheduler.service import rank_for

    if actor is not None:
        check_allowed(actor, vm, Action.DEPLOY)
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
    elif ranked is not None:
        candidates, reason = ranked
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
    cached = hosts.get(hid) if hosts is not None else None
    host = cached if cached is not None else Host.objects.get(pk=hid)
    if hosts is not None:
        hosts[hid] = host
    bulk.add(VMPlacement(vm=vm, host=host, start_reason="deploy", vcpu=vm.vcpu, memory_mb=vm.memory_mb))
    if actor is not None:
        record_action(actor, vm, "deploy", ip=ip, host=host.name)
    vm.host = host
    vm.schedule_message = ""
    begin(
        vm, Action.DEPLOY, S.PROLOG, f"placed on {host.name}", check_quota=actor is not None,
        restore=bool(vm.saved_state_path),
    )  # fmt: skip
    return vm
