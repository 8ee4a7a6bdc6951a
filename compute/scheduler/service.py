"""The ORM side of the scheduler: snapshot hosts into plain views, let the core rank them.

The core (``core.py``) sees no ORM; capacity is then claimed in the database in ranked order
(``compute.capacity.claim``), so concurrent schedulers never overbook.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .. import hooks
from ..models import Host, VirtualMachine
from ..states import HostState
from .core import HostTable, HostView, Policy, VMRequest


def host_views(exclude: int | None = None) -> list[HostView]:
    """Every schedulable host (enabled and monitored), as plain values: one query over the
    hosts, whatever the number of VMs."""
    rows = Host.objects.filter(state=HostState.MONITORED).select_related("cluster")
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    return [
        HostView(
            id=h.pk,
            name=h.name,
            cluster_id=h.cluster_id,
            cluster_name=h.cluster.name if h.cluster else "",
            hypervisor=h.hypervisor,
            labels={str(k): str(v) for k, v in (h.labels or {}).items()},
            free_vcpu=h.free_vcpu,
            free_memory_mb=h.free_memory_alloc_mb,
            free_disk_gb=h.free_disk_gb,
            running_vms=h.alloc_vms,  # kept by compute.capacity: no count over the VMs
            cpu_load=h.cpu_load,
            priority=h.priority,
        )
        for h in rows
    ]


def vm_request(vm: VirtualMachine) -> VMRequest:
    return VMRequest(
        id=vm.pk,
        vcpu=vm.vcpu,
        memory_mb=vm.memory_mb,
        disk_gb=vm.disk_gb,
        required_labels={str(k): str(v) for k, v in (vm.required_labels or {}).items()},
        hypervisor=vm.hypervisor or None,
        cluster_id=vm.cluster_id,
        cluster_name=vm.cluster.name if vm.cluster else "",
    )


def policy_for(vm: VirtualMachine) -> Policy:
    """The VM's cluster's policy, or the cloud default for VMs free to go anywhere."""
    if vm.cluster is not None:
        return Policy(vm.cluster.placement_policy)
    return Policy(getattr(settings, "NEPHELE_DEFAULT_POLICY", "packing"))


def rank_for(vm: VirtualMachine, exclude: int | None = None) -> tuple[list[int], str]:
    """Host ids best-first for ``vm`` (not ``exclude``), or ([], the reason nothing fits)."""
    return rank_batch([vm], exclude)[vm.pk]


def rank_batch(vms: list[VirtualMachine], exclude: int | None = None) -> dict[int, tuple[list[int], str]]:
    """Host ids best-first for each VM, in one pass over one snapshot of the hosts: each VM's
    first choice is taken from the snapshot before the next VM is ranked, so a batch spreads as
    its placements will (the issue-13 scheduler path: a sweep over thousands of pending VMs
    reads the hosts once). Claims stay atomic: ``place_vm`` claims in the database in this
    order and falls back to the next host when another scheduler took the room meanwhile."""
    hosts = host_views(exclude)
    out: dict[int, tuple[list[int], str]] = {}
    if not hosts:
        return {vm.pk: ([], "no enabled and monitored host") for vm in vms}
    table = HostTable(hosts)
    index = {int(h): i for i, h in enumerate(table.ids)}
    cluster_of = {h.id: h.cluster_id for h in hosts}
    filters = hooks.placement_filter(vms)  # e.g. storage: hosts reaching a datastore with room
    for vm in vms:
        req = vm_request(vm)
        idx = table.candidates(req)
        if len(idx) == 0:
            out[vm.pk] = ([], table.explain(req))
            continue
        order = table.ids[table.rank(req, idx, policy_for(vm))]
        ranked, reason = _best(vm, order, filters, cluster_of)
        if ranked:
            table.claim(index[ranked[0]], req)
        out[vm.pk] = (ranked, reason)
    return out


#: hosts handed to the claims per VM: the best ones that pass every filter (a claim falls back to
#: the next when a concurrent scheduler took the room; a VM left without any retries next sweep)
KEEP_HOSTS = 16
_WINDOW = 64


def _best(
    vm: VirtualMachine, order: Any, filters: list[Any], cluster_of: dict[int, int | None]
) -> tuple[list[int], str]:
    """The first ``KEEP_HOSTS`` host ids of ``order`` (ranked best first) that every filter keeps,
    walking it a window at a time: the cost per VM does not grow with the number of hosts."""
    ranked: list[int] = []
    reason = ""
    for start in range(0, len(order), _WINDOW):
        window = [int(h) for h in order[start : start + _WINDOW]]
        for keep in filters:
            window, reason = keep(vm, cluster_of, window, reason)
            if not window:
                break
        ranked.extend(window)
        if len(ranked) >= KEEP_HOSTS:
            return ranked[:KEEP_HOSTS], ""
    return ranked, "" if ranked else reason
