"""The ORM side of the scheduler: snapshot hosts into plain views, let the core rank them.

The core (``core.py``) sees no ORM; capacity is then claimed in the database in ranked order
(``compute.capacity.claim``), so concurrent schedulers never overbook.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count

from .. import hooks
from ..models import Host, VirtualMachine
from ..states import HostState
from .core import HostView, Policy, VMRequest, ranked_hosts


def host_views(exclude: int | None = None) -> list[HostView]:
    """Every schedulable host (enabled and monitored), as plain values."""
    rows = Host.objects.filter(state=HostState.MONITORED).select_related("cluster")
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    running: dict[int, int] = dict(
        VirtualMachine.objects.filter(host__isnull=False)
        .values("host_id")
        .annotate(n=Count("pk"))
        .values_list("host_id", "n")
    )
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
            running_vms=running.get(h.pk, 0),
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
    """Host ids best-first for ``vm``, or ([], the reason nothing fits)."""
    hosts = host_views(exclude)
    if not hosts:
        return [], "no enabled and monitored host"
    ranked, reason = ranked_hosts(vm_request(vm), hosts, policy_for(vm))
    if ranked:
        cluster_of = {h.id: h.cluster_id for h in hosts}
        for keep in hooks.placement_filter.functions():  # e.g. storage: hosts reaching a datastore with room
            ranked, reason = keep(vm, cluster_of, ranked, reason)
            if not ranked:
                break
    return ranked, reason
