"""Portal-wide pages: the dashboard and the project switcher."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, FloatField, Max, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from compute.models import Host, VirtualMachine
from compute.states import FAILURES, TRANSIENT, HostState, PlacementPolicy, VMState
from compute.views import with_addresses, with_rights
from tenants import quotas
from tenants.models import Project
from tenants.querysets import is_cloud_admin, is_cloud_auditor


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Counts by state, recent VMs and events; for operators capacity per cluster and host."""
    user = request.user
    cloud_wide = is_cloud_admin(user) or is_cloud_auditor(user)
    vms = VirtualMachine.objects.restrict(user, "view").exclude(state=VMState.DONE)
    if not cloud_wide:
        vms = vms.filter(project=getattr(request, "project", None))
    by_state = dict(vms.order_by().values_list("state").annotate(n=Count("pk")))
    ctx: dict[str, Any] = {
        "cloud_wide": cloud_wide,
        "vm_count": sum(by_state.values()),
        "running": by_state.get(VMState.RUNNING, 0),
        "pending": sum(n for s, n in by_state.items() if s in TRANSIENT or s == VMState.PENDING),
        "failed": sum(n for s, n in by_state.items() if s in FAILURES or s == VMState.UNKNOWN),
        "by_state": sorted(by_state.items(), key=lambda sn: -sn[1]),
        "recent": with_addresses(with_rights(user, vms.select_related("host", "owner", "project__organization")[:8])),
        "busiest": _busiest_vms(user),
        "events": _recent_events(user, None if cloud_wide else getattr(request, "project", None)),
    }
    if cloud_wide:
        visible = Host.objects.restrict(user, "view")
        ctx["clusters"] = cluster_capacity(visible)
        ctx["host_count"] = sum(c["count"] for c in ctx["clusters"])
        ctx["hosts_up"] = sum(c["up"] for c in ctx["clusters"])
    project = getattr(request, "project", None)
    if project is not None:
        ctx["quota_lines"] = [
            q for q in quotas.usage(project) if q.resource in ("vms", "running_vms", "vcpu", "memory_mb")
        ]
    return render(request, "portal/dashboard.html", ctx)


#: hosts shown per cluster on the dashboard: the most allocated (the host list has them all)
TOP_HOSTS = 5


def cluster_capacity(hosts: QuerySet[Host]) -> list[dict[str, Any]]:
    """Allocated and measured use against total, per cluster (hosts without one grouped last),
    summed by the database, with each cluster's most allocated hosts: the dashboard costs the
    same at 20 hosts or 2,000 (issue 13)."""
    probed = Q(last_probe_at__isnull=False)
    groups = (
        hosts.order_by().values("cluster", "cluster__name", "cluster__placement_policy")
        .annotate(
            count=Count("pk"), up=Count("pk", filter=Q(state=HostState.MONITORED)),
            t_vcpu=Sum("total_vcpu"), a_vcpu=Sum("alloc_vcpu"),
            t_mem=Sum("total_memory_mb"), a_mem=Sum("alloc_memory_mb"),
            # measured: each probed host's CPU load times its vCPUs; memory not free
            u_vcpu=Sum(F("cpu_load") * F("total_vcpu"), filter=probed, output_field=FloatField()),
            u_mem=Sum(F("total_memory_mb") - F("free_memory_mb"), filter=probed),
        )
    )  # fmt: skip
    policies = dict(PlacementPolicy.choices)
    rows = []
    for g in sorted(groups, key=lambda g: (g["cluster"] is None, g["cluster__name"] or "")):
        top = hosts.filter(cluster=g["cluster"]) if g["cluster"] else hosts.filter(cluster__isnull=True)
        rows.append({
            "name": g["cluster__name"] or "No cluster",
            "policy": policies.get(g["cluster__placement_policy"], "default") if g["cluster"] else "default",
            "count": g["count"], "up": g["up"],
            "total_vcpu": g["t_vcpu"] or 0, "alloc_vcpu": g["a_vcpu"] or 0,
            "total_memory_mb": g["t_mem"] or 0, "alloc_memory_mb": g["a_mem"] or 0,
            "used_vcpu": round(g["u_vcpu"] or 0), "used_memory_mb": max(0, g["u_mem"] or 0),
            "hosts": list(top.order_by("-alloc_vcpu", "name")[:TOP_HOSTS]),
        })  # fmt: skip
    return rows


def _busiest_vms(user: Any, limit: int = 5) -> list[tuple[Any, float]]:
    """The VMs the user may see with the highest CPU in the last two minutes of samples.

    The access gate comes first and the top ``limit`` is taken among what it lets through: a
    cloud-wide top list filtered afterwards leaves a tenant of a busy cloud with an empty card."""
    from monitoring.models import Kind, Metric, Sample

    visible = VirtualMachine.objects.restrict(user, "view").exclude(state=VMState.DONE)
    recent = (
        Sample.objects.filter(
            kind=Kind.VM,
            metric=Metric.CPU_PCT,
            ts__gte=timezone.now() - timedelta(minutes=2),
            object_id__in=visible.values("pk"),
        )
        .values("object_id")
        .annotate(peak=Max("value"))
        .order_by("-peak", "object_id")[:limit]
    )
    peaks = {r["object_id"]: r["peak"] for r in recent}
    vms = visible.filter(pk__in=peaks)
    return sorted(((vm, round(peaks[vm.pk], 1)) for vm in vms), key=lambda p: -p[1])


def _recent_events(user: Any, project: Project | None, limit: int = 8) -> list[Any]:
    from monitoring.models import Event

    events = Event.objects.restrict(user, "view")
    if project is not None:
        events = events.filter(project=project)
    return list(events[:limit])


@login_required
@require_POST
def switch_project(request: HttpRequest) -> HttpResponse:
    """Make another of the user's projects the active one (a foreign project is ignored)."""
    pk = request.POST.get("project", "")
    project = Project.objects.restrict(request.user, "view").filter(pk=int(pk)).first() if pk.isdigit() else None
    if project is not None:
        request.session["project_id"] = project.pk
    nxt = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = "dashboard"
    return redirect(nxt)
