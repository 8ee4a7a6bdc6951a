"""Portal-wide pages: dashboard and the project switcher."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from compute.models import Cluster, Host, VirtualMachine
from compute.states import ACTIVE, FAILURES, TRANSIENT, HostState, VMState
from portal.querysets import is_cloud_admin, is_cloud_auditor
from tenants import quotas
from tenants.models import Project


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    cloud_wide = is_cloud_admin(request.user) or is_cloud_auditor(request.user)
    vms = VirtualMachine.objects.restrict(request.user, "view").exclude(state=VMState.DONE)
    if not cloud_wide:
        vms = vms.filter(project=getattr(request, "project", None))
    by_state = dict(vms.values("state").annotate(n=Count("pk")).values_list("state", "n"))
    ctx: dict[str, Any] = {
        "vm_count": sum(by_state.values()),
        "running": by_state.get(VMState.RUNNING, 0),
        "pending": sum(n for s, n in by_state.items() if s in TRANSIENT or s == VMState.PENDING),
        "failed": sum(n for s, n in by_state.items() if s in FAILURES or s == VMState.UNKNOWN),
        "active": sum(n for s, n in by_state.items() if s in ACTIVE),
        "by_state": sorted(by_state.items()),
        "recent": vms.select_related("host", "owner")[:8],
        "hosts": None,
    }
    if cloud_wide:
        hosts = list(Host.objects.restrict(request.user, "view"))
        ctx["hosts"] = hosts
        ctx["hosts_up"] = sum(h.state == HostState.MONITORED for h in hosts)
        ctx["clusters"] = _cluster_capacity()
    ctx["busiest"] = _busiest_vms(request.user)
    project = getattr(request, "project", None)
    if project is not None:
        ctx["quota_lines"] = [
            q for q in quotas.usage(project) if q.resource in ("vms", "running_vms", "vcpu", "memory_mb")
        ]
    return render(request, "portal/dashboard.html", ctx)


def _cluster_capacity() -> list[dict[str, Any]]:
    rows = []
    sums = ("total_vcpu", "alloc_vcpu", "total_memory_mb", "alloc_memory_mb", "free_memory_mb")
    for cluster in [*Cluster.objects.all(), None]:
        hosts = list(Host.objects.filter(cluster=cluster))
        if not hosts:
            continue
        agg = {k: sum(getattr(h, k) for h in hosts) for k in sums}
        rows.append(
            {
                "name": cluster.name if cluster else "(no cluster)",
                "policy": cluster.placement_policy if cluster else "default",
                **agg,
                # measured: CPU load of each host times its vCPUs; memory not free
                "used_vcpu": round(sum(h.cpu_load * h.total_vcpu for h in hosts), 1),
                "used_memory_mb": max(0, agg["total_memory_mb"] - agg["free_memory_mb"]),
                "hosts": len(hosts),
            }
        )
    return rows


def _busiest_vms(user: Any, limit: int = 5) -> list[tuple[Any, float]]:
    """The VMs with the highest CPU in the last two minutes of samples."""
    from datetime import timedelta

    from django.db.models import Max
    from django.utils import timezone

    from monitoring.models import Kind, Metric, Sample

    recent = (
        Sample.objects.filter(kind=Kind.VM, metric=Metric.CPU_PCT, ts__gte=timezone.now() - timedelta(minutes=2))
        .values("object_id")
        .annotate(peak=Max("value"))
        .order_by("-peak")[:50]
    )
    peaks = {r["object_id"]: r["peak"] for r in recent}
    vms = VirtualMachine.objects.restrict(user, "view").filter(pk__in=peaks).exclude(state=VMState.DONE)
    return sorted(((vm, round(peaks[vm.pk], 1)) for vm in vms), key=lambda p: -p[1])[:limit]


@login_required
@require_POST
def switch_project(request: HttpRequest) -> HttpResponse:
    project = Project.objects.restrict(request.user, "view").filter(pk=request.POST.get("project")).first()
    if project is not None:
        request.session["project_id"] = project.pk
    nxt = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = "dashboard"
    return redirect(nxt)
