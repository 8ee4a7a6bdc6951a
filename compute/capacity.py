"""Host capacity bookkeeping: claims and releases are single conditional UPDATEs.

The database settles concurrent claims (the row is locked by the UPDATE and its WHERE is
re-checked), so however many schedulers run, a host is never overbooked. ``alloc_vms`` counts
the claims, so the scheduler's snapshot of the hosts never counts VMs (issue 13).
"""

from __future__ import annotations

from django.db.models import F, Value
from django.db.models.functions import Greatest

from .models import Host
from .states import HostState


def claim(host_id: int, vcpu: int, memory_mb: int, disk_gb: int) -> bool:
    """Take capacity on a host if it is still MONITORED (enabled, answering) and has room; False
    otherwise — a scheduler ranking a snapshot of the hosts never places on one disabled since."""
    return (
        Host.objects.filter(
            pk=host_id,
            state=HostState.MONITORED,
            alloc_vcpu__lte=F("total_vcpu") - vcpu,
            alloc_memory_mb__lte=F("total_memory_mb") - memory_mb,
            alloc_disk_gb__lte=F("total_disk_gb") - disk_gb,
        ).update(
            alloc_vcpu=F("alloc_vcpu") + vcpu,
            alloc_memory_mb=F("alloc_memory_mb") + memory_mb,
            alloc_disk_gb=F("alloc_disk_gb") + disk_gb,
            alloc_vms=F("alloc_vms") + 1,
        )
        == 1
    )


def adjust(host_id: int, d_vcpu: int, d_memory_mb: int) -> bool:
    """Grow (or shrink) a claim in place, as for a resize while powered off."""
    return (
        Host.objects.filter(
            pk=host_id,
            alloc_vcpu__lte=F("total_vcpu") - d_vcpu,
            alloc_memory_mb__lte=F("total_memory_mb") - d_memory_mb,
        ).update(alloc_vcpu=F("alloc_vcpu") + d_vcpu, alloc_memory_mb=F("alloc_memory_mb") + d_memory_mb)
        == 1
    )


def release(host_id: int, vcpu: int, memory_mb: int, disk_gb: int) -> None:
    """Give capacity back."""
    Host.objects.filter(pk=host_id).update(
        alloc_vcpu=F("alloc_vcpu") - vcpu,
        alloc_memory_mb=F("alloc_memory_mb") - memory_mb,
        alloc_disk_gb=F("alloc_disk_gb") - disk_gb,
        alloc_vms=Greatest(F("alloc_vms") - 1, Value(0)),
    )
