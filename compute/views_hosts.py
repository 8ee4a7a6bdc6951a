"""Browser pages for hosts (cloud admins): the list with its column choice, registration,
state, power and maintenance actions, BMC settings, metrics. Same rules as compute/views.py."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from portal.api import client_ip
from portal.errors import Conflict, ServiceError
from portal.tables import Column, Table
from tenants.querysets import is_cloud_admin

from . import services
from .drivers.power import power_driver_names
from .forms import HostForm
from .models import Host, VirtualMachine
from .states import HostState, VMState
from .views import _back, _last_hour, _toast, with_addresses, with_rights  # the pages' shared helpers

HOST_ACTIONS = [("enable", "Enable"), ("disable", "Disable"), ("offline", "Offline"), ("confirm_down", "Confirm down")]
#: the host page's power and maintenance buttons (compute/services/power.py)
POWER_ACTIONS = [("power_on", "Power on"), ("power_off", "Power off"), ("power_reset", "Reset"),
                 ("power_status", "Refresh power state")]  # fmt: skip
MAINTENANCE_ACTIONS = [("maintenance", "Maintenance"), ("drain", "Drain"), ("activate", "Activate")]


# --------------------------------------------------------------------------------------------
# hosts (cloud admins)
# --------------------------------------------------------------------------------------------
def _admin_or_404(request: HttpRequest) -> None:
    if not is_cloud_admin(request.user):
        raise Http404("not found")


HOST_COLUMNS = [
    Column("name", "Host", "name"), Column("state", "State", "state"),
    Column("power", "Power", "power_state", "c-power", optional=True),
    Column("cluster", "Cluster · labels", "cluster__name", "c-cluster", optional=True),
    Column("vcpu", "vCPU", "alloc_vcpu", "c-cpu", optional=True),
    Column("memory", "Memory", "alloc_memory_mb", "c-mem", optional=True),
    Column("vms", "VMs", None, "c-vms c-num", optional=True),
]  # fmt: skip


def hosts_with_counts(user: Any) -> QuerySet[Host]:
    """Hosts through the gate, with their resident VMs counted (one query for the list)."""
    return (
        Host.objects.restrict(user, "view")
        .select_related("cluster")
        .annotate(vm_count=Count("vms", filter=~Q(vms__state=VMState.DONE)))
        .order_by("name")  # Meta.ordering does not apply to aggregating queries
    )


def decorate_host(host: Host) -> Host:
    """Measured use beside allocation (the second bar of each resource); ``None`` until probed."""
    probed = host.last_probe_at is not None
    host.used_vcpu = round(host.cpu_load * host.total_vcpu, 1) if probed else None  # type: ignore[attr-defined]
    host.load_pct = min(100, round(100 * host.cpu_load)) if probed else None  # type: ignore[attr-defined]
    host.used_memory_mb = max(0, host.total_memory_mb - host.free_memory_mb) if probed else None  # type: ignore[attr-defined]
    return host


def host_partial_context(host: Host) -> dict[str, Any]:
    """What ``_host_row.html`` and ``_host_panel.html`` need."""
    return {
        "host": decorate_host(host), "host_actions": HOST_ACTIONS, "power_actions": POWER_ACTIONS,
        "maintenance_actions": MAINTENANCE_ACTIONS, "resident": services.power.resident_vms(host.pk),
        "power_off_ok": host.state in services.power.POWER_OFF_FROM, "power_drivers": power_driver_names(),
    }  # fmt: skip


def _run_host_action(request: HttpRequest, pk: int, action: str) -> str:
    """Start a host action from a button; answers what to tell the operator on success."""
    ip = client_ip(request)
    if action.startswith("power_"):
        services.power.request_power(request.user, pk, action.removeprefix("power_"), ip=ip)
        return f"power {action.removeprefix('power_')} sent to the BMC"
    if action == "maintenance":
        services.power.enter_maintenance(request.user, pk, reason=request.POST.get("reason", ""), ip=ip)
        return "in maintenance: no new VMs are placed here"
    if action == "drain":
        report = services.power.drain_host(request.user, pk, ip=ip)
        stays = "; ".join(f"VM {vm}: {why}" for vm, why in report.stays.items())
        if stays:
            raise Conflict(f"draining: {len(report.migrating)} VM(s) migrating; staying: {stays}")
        return f"draining: {len(report.migrating)} VM(s) migrating ({len(report.live)} live)"
    if action == "activate":
        services.power.activate_host(request.user, pk, ip=ip)
        return "activated: probing it"
    services.set_host_state(request.user, pk, action, ip=ip)
    return f"{action} done"


@login_required
def host_list(request: HttpRequest, form: HostForm | None = None) -> HttpResponse:
    _admin_or_404(request)
    visible = Host.objects.restrict(request.user, "view")
    by_state = dict(visible.order_by().values_list("state").annotate(n=Count("pk")))
    table = Table(request, visible.select_related("cluster"), HOST_COLUMNS, default_sort="name",
                  total=sum(by_state.values()), name="hosts")  # fmt: skip
    # resident VMs counted for this page's hosts only: no count over every VM of the cloud
    counts = dict(
        VirtualMachine.objects.filter(host__in=[h.pk for h in table.rows]).exclude(state=VMState.DONE)
        .order_by().values_list("host").annotate(n=Count("pk"))
    )  # fmt: skip
    for h in table.rows:
        h.vm_count = counts.get(h.pk, 0)  # type: ignore[attr-defined]
    ctx = {
        "hosts": [decorate_host(h) for h in table.rows],
        "table": table,
        "total": table.total,
        "form": form or HostForm(user=request.user),
        "form_open": form is not None,
        "host_actions": HOST_ACTIONS,
        "up": by_state.get(HostState.MONITORED, 0),
    }
    return render(request, "compute/host_list.html", ctx, status=400 if form is not None else 200)


@login_required
@require_POST
def host_register(request: HttpRequest) -> HttpResponse:
    _admin_or_404(request)
    form = HostForm(request.POST, user=request.user)
    if form.is_valid():
        d = form.cleaned_data
        try:
            host = services.register_host(
                request.user, name=d["name"], uri=d["uri"], hypervisor=d["hypervisor"], cluster=d["cluster"],
                labels=d["labels"], ip=client_ip(request),
            )  # fmt: skip
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Host {host.name} registered; probing it now.")
            return redirect("ui-host-list")
    return host_list(request, form=form)


@login_required
@require_POST
def host_action(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_404(request)
    action = request.POST.get("action", "")
    fresh = hosts_with_counts(request.user).filter(pk=pk).first()
    if fresh is None:
        raise Http404("host not found")
    try:
        done, note = _run_host_action(request, pk, action), ""
    except ServiceError as exc:
        done, note = "", exc.message
    if request.headers.get("HX-Request"):
        fresh = hosts_with_counts(request.user).filter(pk=pk).first()
        if fresh is None:
            raise Http404("host not found")
        html = render_to_string(
            "compute/_partials/_host_live.html", {**host_partial_context(fresh), "note": note}, request=request
        )
        html += _toast(note) if note else _toast(f"Host {fresh.name}: {done}.", "success")
        return HttpResponse(html)
    if note:
        messages.error(request, note)
    else:
        messages.success(request, f"Host {fresh.name}: {done}.")
    return _back(request, "ui-host-list")


@login_required
@require_POST
def host_bmc(request: HttpRequest, pk: int) -> HttpResponse:
    """The host page's BMC form (the password field left empty keeps the stored password)."""
    _admin_or_404(request)
    host = Host.objects.restrict(request.user, "view").filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    p = request.POST
    try:
        services.power.configure_bmc(
            request.user, pk, power_driver=p.get("power_driver", ""), bmc_address=p.get("bmc_address", ""),
            bmc_username=p.get("bmc_username", ""), bmc_password=p.get("bmc_password") or None,
            bmc_system=p.get("bmc_system", ""), bmc_verify_tls=p.get("bmc_verify_tls") == "on",
            ip=client_ip(request),
        )  # fmt: skip
    except ServiceError as exc:
        messages.error(request, f"BMC settings not saved: {exc.message}")
    else:
        messages.success(request, f"Host {host.name}: BMC settings saved.")
    return redirect("ui-host-detail", pk=pk)


@login_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_404(request)
    host = hosts_with_counts(request.user).filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    vms = VirtualMachine.objects.restrict(request.user, "view").filter(host=host).exclude(state=VMState.DONE)
    vms = with_addresses(
        with_rights(request.user, vms.select_related("owner", "host", "project__organization"), manage=None)
    )
    return render(request, "compute/host_detail.html", {**host_partial_context(host), "vms": vms})


@login_required
def host_metrics(request: HttpRequest, pk: int) -> HttpResponse:
    from monitoring.models import Kind

    _admin_or_404(request)
    host = Host.objects.restrict(request.user, "view").filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    return JsonResponse(_last_hour(Kind.HOST, host.pk, [10, 11, 12, 13]))
