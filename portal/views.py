"""Portal-wide pages: the dashboard and the project switcher."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from compute.models import Host, VirtualMachine
from compute.states import FAILURES, TRANSIENT, HostState, VMState
from compute.views import decorate_host, with_rights
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
        "recent": with_rights(user, vms.select_related("host", "owner", "project__organization")[:8]),
        "hosts": None,
        "busiest": _busiest_vms(user),
        "events": _recent_events(user, None if cloud_wide else getattr(request, "project", None)),
    }
    if cloud_wide:
        hosts = [decorate_host(h) for h in Host.objects.restrict(user, "view").select_related("cluster")]
        ctx["hosts"] = hosts
        ctx["hosts_up"] = sum(h.state == HostState.MONITORED for h in hosts)
        ctx["clusters"] = cluster_capacity(hosts)
    project = getattr(request, "project", None)
    if project is not None:
        ctx["quota_lines"] = [
            q for q in quotas.usage(project) if q.resource in ("vms", "running_vms", "vcpu", "memory_mb")
        ]
    return render(request, "portal/dashboard.html", ctx)


def cluster_capacity(hosts: list[Host]) -> list[dict[str, Any]]:
    """Allocated and measured use against total, per cluster (hosts without one grouped last)."""
    groups: dict[Any, list[Host]] = defaultdict(list)
    for h in hosts:
        groups[h.cluster].append(h)
    rows = []
    for cluster in sorted(groups, key=lambda c: (c is None, c.name if c else "")):
        members = groups[cluster]
        probed = [h for h in members if h.last_probe_at is not None]
        rows.append(
            {
                "name": cluster.name if cluster else "No cluster",
                "policy": cluster.get_placement_policy_display() if cluster else "default",
                "hosts": members,
                "up": sum(h.state == HostState.MONITORED for h in members),
                "total_vcpu": sum(h.total_vcpu for h in members),
                "alloc_vcpu": sum(h.alloc_vcpu for h in members),
                "total_memory_mb": sum(h.total_memory_mb for h in members),
                "alloc_memory_mb": sum(h.alloc_memory_mb for h in members),
                # measured: each probed host's CPU load times its vCPUs; memory not free
                "used_vcpu": round(sum(h.cpu_load * h.total_vcpu for h in probed)),
                "used_memory_mb": sum(max(0, h.total_memory_mb - h.free_memory_mb) for h in probed),
            }
        )
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
