"""Browser pages for compute: VMs (live), templates, hosts.

Every read starts from the access gate (``Model.objects.restrict``); every change goes through
a service; a service's refusal becomes a message beside the form or button, never a 500.
Actions posted with htmx answer with the re-rendered partials (``hx-swap-oob``), the same ones
the websocket pushes (CONVENTIONS §8); without JavaScript they redirect back with a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.api import client_ip
from portal.errors import ServiceError
from portal.tables import Column, Table
from tenants import quotas
from tenants.models import Project
from tenants.querysets import is_cloud_admin, is_cloud_auditor

from . import services
from .forms import CreateVMForm, HostForm, TemplateForm
from .models import Host, VirtualMachine, VMTemplate
from .services import console as console_service
from .services import templates as template_service
from .services.context import context_summary
from .states import FAILURES, RECOVER_OPTIONS, TRANSIENT, Action, HostState, VMState

HOST_ACTIONS = [("enable", "Enable"), ("disable", "Disable"), ("offline", "Offline"), ("confirm_down", "Confirm down")]

# The state filter of the VM list (Sunstone's "filter by state"), as groups a person thinks in.
STATE_GROUPS: dict[str, tuple[str, frozenset[str]]] = {
    "running": ("Running", frozenset({VMState.RUNNING})),
    "busy": ("In progress", frozenset({VMState.PENDING}) | TRANSIENT),
    "stopped": (
        "Stopped",
        frozenset({VMState.POWEROFF, VMState.STOPPED, VMState.UNDEPLOYED, VMState.SUSPENDED, VMState.HOLD}),
    ),
    "failed": ("Needs attention", FAILURES | {VMState.UNKNOWN}),
}


def vm_columns(user: Any) -> list[Column]:
    """The VM table's columns (the host column for cloud staff, as ``_vm_row.html`` shows it)."""
    host = [Column("host", "Host", "host__name", "c-host")] if user.is_staff or user.is_superuser else []
    return [
        Column("name", "Name", "name"), Column("state", "State", "state"), *host,
        Column("size", "Size", "vcpu", "c-size"), Column("owner", "Owner", "owner__username", "c-owner"),
        Column("age", "Age", "pk", "c-age"),  # ids grow with creation: the primary key index
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# helpers shared by the pages, the htmx answers and the live consumer
# --------------------------------------------------------------------------------------------
def manage_project_ids(user: Any) -> set[int] | None:
    """The projects whose VMs ``user`` may act on; ``None`` means all (cloud admins)."""
    if is_cloud_admin(user):
        return None
    return set(Project.objects.restrict(user, "manage").values_list("pk", flat=True))


def with_rights(
    user: Any, vms: Iterable[VirtualMachine], manage: set[int] | None | bool = False
) -> list[VirtualMachine]:
    """Mark each VM with ``can_manage`` (the partials show buttons only then), in one query."""
    vms = list(vms)
    ids = manage_project_ids(user) if manage is False else manage
    for vm in vms:
        vm.can_manage = ids is None or vm.project_id in ids  # type: ignore[attr-defined,operator]
    return vms


def vm_partial_context(user: Any, vm: VirtualMachine) -> dict[str, Any]:
    """What ``_vm_row.html`` and ``_vm_panel.html`` need beyond the VM (``vm.can_manage`` set)."""
    admin = is_cloud_admin(user)
    hosts: list[Host] = []
    if admin:
        hosts = list(Host.objects.restrict(user, "view").filter(state=HostState.MONITORED).order_by("name"))
    return {"vm": vm, "hosts": hosts, "recover_options": RECOVER_OPTIONS, "cloud_admin": admin}


def _vm_or_404(request: HttpRequest, pk: int) -> VirtualMachine:
    vm = (
        VirtualMachine.objects.restrict(request.user, "view")
        .select_related("host", "owner", "project__organization", "template")
        .filter(pk=pk)
        .first()
    )
    if vm is None:
        raise Http404("virtual machine not found")
    with_rights(request.user, [vm])
    return vm


def _toast(note: str, level: str = "error") -> str:
    """The page's message area, replaced out of band (an htmx answer's refusal)."""
    return format_html(
        '<ul class="messages" id="messages" hx-swap-oob="true" aria-live="polite"><li class="{}" role="alert">{}</li></ul>',
        level,
        note,
    )


def _back(request: HttpRequest, fallback: str, **kwargs: Any) -> HttpResponse:
    """Redirect to the page the form was on (no-JS posts), else to ``fallback``."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return redirect(referer)
    return redirect(fallback, **kwargs)


def _project_context(request: HttpRequest) -> dict[str, Any]:
    project = getattr(request, "project", None)
    if project is None:
        return {"can_create": False}
    return {
        "quota_lines": [q for q in quotas.usage(project) if q.resource in ("vms", "running_vms", "vcpu", "memory_mb")],
        "can_create": Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists(),
    }


# --------------------------------------------------------------------------------------------
# virtual machines
# --------------------------------------------------------------------------------------------
def _vm_list_context(request: HttpRequest, create_form: CreateVMForm | None = None) -> dict[str, Any]:
    user, get = request.user, request.GET
    cloud_wide = is_cloud_admin(user) or is_cloud_auditor(user)
    scope = "all" if get.get("all") == "1" else get.get("project", "")
    show_done = get.get("done") == "1"
    group = get.get("state", "") if get.get("state", "") in STATE_GROUPS else ""
    query = get.get("q", "").strip()[:63]

    base: QuerySet[VirtualMachine] = VirtualMachine.objects.restrict(user, "view")
    scoped_project = getattr(request, "project", None)
    if cloud_wide and scope == "all":
        scoped_project = None
    elif cloud_wide and scope.isdigit():
        scoped_project = Project.objects.restrict(user, "view").filter(pk=int(scope)).first()
        base = base.filter(project=scoped_project)
    else:
        scope = ""
    if scope == "":
        base = base.filter(project=getattr(request, "project", None))
    if not show_done:
        base = base.exclude(state=VMState.DONE)
    if query:
        base = base.filter(name__icontains=query)

    by_state = dict(base.order_by().values_list("state").annotate(n=Count("pk")))
    groups = [
        {"key": key, "label": label, "count": sum(n for s, n in by_state.items() if s in states)}
        for key, (label, states) in STATE_GROUPS.items()
    ]
    vms = base
    if group:
        vms = vms.filter(state__in=STATE_GROUPS[group][1])
    shown = sum(n for s, n in by_state.items() if not group or s in STATE_GROUPS[group][1])
    table = Table(
        request, vms.select_related("host", "owner", "project__organization"), vm_columns(user),
        default_sort="-age", total=shown,
    )  # fmt: skip
    rows = with_rights(user, table.rows)
    ctx = {
        "vms": rows,
        "table": table,
        "total": sum(by_state.values()),
        "groups": groups,
        "group": group,
        "query": query,
        "scope": scope,
        "scope_project": scoped_project,
        "show_all": scope == "all",
        "show_done": show_done,
        "cloud_wide": cloud_wide,
        "create_form": create_form or CreateVMForm(user=user, initial={"template": get.get("template")}),
        "create_open": create_form is not None or get.get("create") == "1",
    }
    ctx.update(_project_context(request))
    return ctx


@login_required
def vm_list(request: HttpRequest) -> HttpResponse:
    return render(request, "compute/vm_list.html", _vm_list_context(request))


@login_required
@require_POST
def vm_create(request: HttpRequest) -> HttpResponse:
    form = CreateVMForm(request.POST, user=request.user)
    project = getattr(request, "project", None)
    if project is None:
        form.add_error(None, "Choose a project first (the switcher at the top).")
    elif form.is_valid():
        d = form.cleaned_data
        try:
            vms = services.create_vms(
                request.user, project=project, template=d["template"], name=d["name"], count=d["count"],
                vcpu=d["vcpu"], memory_mb=d["memory_mb"], hold=d["hold"], ip=client_ip(request),
                user_data=d["user_data"],
            )  # fmt: skip
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            what = vms[0].name if len(vms) == 1 else f"{len(vms)} VMs"
            messages.success(
                request, f"{what} created" + ("; on hold." if d["hold"] else "; the scheduler is placing it.")
            )
            return redirect("ui-vm-list")
    return render(request, "compute/vm_list.html", _vm_list_context(request, create_form=form), status=400)


@login_required
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm_or_404(request, pk)
    ctx = vm_partial_context(request.user, vm)
    ctx["changes"] = vm.state_changes.order_by("-pk")[:50]
    ctx["placements"] = vm.placements.select_related("host")[:50]
    ctx["vm_context"] = context_summary(vm)
    return render(request, "compute/vm_detail.html", ctx)


CONSOLE_LOG_SHOWN = 64 * 1024  # the console page shows this much of the log's end


def _console_vm(request: HttpRequest, pk: int) -> VirtualMachine:
    """The VM for its console pages: 404 when the user cannot see it, 403 when they only see it."""
    vm = _vm_or_404(request, pk)
    if not vm.can_manage:  # type: ignore[attr-defined]
        raise PermissionDenied("opening a console needs the manage right on the VM's project")
    return vm


@login_required
def vm_console(request: HttpRequest, pk: int) -> HttpResponse:
    """The VM's consoles: its serial terminal, its screen (VNC) when the template enables
    graphics, and the end of its console log. The websockets open with one-time tokens
    (``vm_console_token``); compute/console_consumers.py serves them."""
    vm = _console_vm(request, pk)
    try:
        _vm, log = console_service.read_console_log(request.user, vm.pk, max_bytes=CONSOLE_LOG_SHOWN)
    except ServiceError:
        log = b""
    running = vm.state == VMState.RUNNING
    ctx = {
        "vm": vm,
        "running": running,
        "serial": running and console_service.has_console(vm, "serial"),
        "vnc": running and console_service.has_console(vm, "vnc"),
        "graphics": vm.template is not None and vm.template.graphics,
        "log": log.decode("utf-8", errors="replace"),
    }
    return render(request, "compute/vm_console.html", ctx)


@login_required
@require_POST
def vm_console_token(request: HttpRequest, pk: int) -> JsonResponse:
    """A one-time console token for the page's script (``kind``: serial or vnc), as JSON."""
    try:
        ticket = console_service.issue_token(
            request.user, pk, request.POST.get("kind", "serial"), ip=client_ip(request)
        )
    except ServiceError as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=exc.status)
    return JsonResponse({"kind": ticket.kind, "url": ticket.path, "expires_at": ticket.expires_at.isoformat()})


@login_required
def vm_console_log(request: HttpRequest, pk: int) -> HttpResponse:
    """The console log as a download (the API's GET /api/v1/vms/<id>/console-log/)."""
    from .api.views import console_log_response

    try:
        vm, data = console_service.read_console_log(request.user, pk)
    except ServiceError as exc:
        if exc.status == 403:
            raise PermissionDenied(exc.message) from None
        if exc.status == 404 and "console log" not in exc.message:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
        return redirect("ui-vm-console", pk=pk)
    return console_log_response(vm, data)


@login_required
def vm_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The row and panel of one VM, exactly as the websocket pushes them: the polling fallback
    (rows poll this every 10 s while the websocket is down) and the answer to a reconnect."""
    vm = _vm_or_404(request, pk)
    html = render_to_string("compute/_partials/_vm_live.html", vm_partial_context(request.user, vm), request=request)
    return HttpResponse(html)


@login_required
def vm_menu(request: HttpRequest, pk: int) -> HttpResponse:
    """A list row's menu of further actions, fetched when it is opened: a page of rows carries
    no menu forms (issue 13). The same rights and states as the row's own buttons."""
    vm = _vm_or_404(request, pk)
    return render(request, "compute/_partials/_vm_menu.html", {"vm": vm})


@login_required
def vm_metrics(request: HttpRequest, pk: int) -> HttpResponse:
    """The VM's series for its charts (same data as the API's /vms/<id>/metrics/)."""
    from monitoring.models import Kind, Metric

    vm = _vm_or_404(request, pk)
    return JsonResponse(_last_hour(Kind.VM, vm.pk, [c for c, _l in Metric.choices if c < 10]))


def _last_hour(kind: int, object_id: int, codes: list[int]) -> dict[str, list[list[float]]]:
    from datetime import timedelta

    from django.utils import timezone

    from monitoring import store
    from monitoring.models import Metric

    since = timezone.now() - timedelta(hours=1)
    labels = dict(Metric.choices)
    return {labels[c]: [[t.timestamp(), v] for t, v in store.series(kind, object_id, c, since)[1]] for c in codes}


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


@login_required
@require_POST
def vm_action(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm_or_404(request, pk)
    p = request.POST
    req = services.ActionRequest(
        action=p.get("action", ""), hard=bool(p.get("hard")), live=bool(p.get("live")),
        host_id=_int_or_none(p.get("host")), recover=p.get("recover", ""),
        vcpu=_int_or_none(p.get("vcpu")), memory_mb=_int_or_none(p.get("memory_mb")),
        version=_int_or_none(p.get("version")),
    )  # fmt: skip
    try:
        services.perform_action(request.user, vm.pk, req, ip=client_ip(request))
        status, note = 202, ""
    except ServiceError as exc:
        status, note = exc.status, exc.message
    label = str(dict(Action.choices).get(req.action, req.action)) + (" (hard)" if req.hard else "")
    if request.headers.get("HX-Request"):
        vm = _vm_or_404(request, pk)
        ctx = {**vm_partial_context(request.user, vm), "note": note}
        html = render_to_string("compute/_partials/_vm_live.html", ctx, request=request)
        html += _toast(note) if note else _toast(f"{label} requested for {vm.name}.", "success")
        # 200 so htmx swaps the out-of-band parts; the service's verdict is in the header and the message
        return HttpResponse(html, headers={"X-Nephele-Status": str(status)})
    if note:
        messages.error(request, f"{vm.name}: {note}")
    else:
        messages.success(request, f"{label} requested for {vm.name}.")
    return _back(request, "ui-vm-detail", pk=pk)


# --------------------------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------------------------
@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    project = getattr(request, "project", None)
    can_manage = project is not None and Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists()
    form = None
    if can_manage:
        form = TemplateForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            try:
                tpl = template_service.create_template(
                    request.user, project=project, name=d["name"], description=d["description"], vcpu=d["vcpu"],
                    memory_mb=d["memory_mb"], disk_gb=d["disk_gb"], boot_image=d["boot_image"],
                    hypervisor=d["hypervisor"], cluster=d["cluster"], required_labels=d["labels"],
                    restart_policy=d["restart_policy"], ha=d["ha"], graphics=d["graphics"],
                    ip=client_ip(request),
                )  # fmt: skip
            except ServiceError as exc:
                field = "labels" if exc.field == "required_labels" else exc.field
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Template {tpl.name} created.")
                return redirect("template-list")
    elif request.method == "POST":
        messages.error(request, "You cannot create templates in this project.")
    templates = (
        VMTemplate.objects.restrict(request.user, "view")
        .select_related("boot_image", "cluster", "project__organization")
        # count only the VMs the user may see: a public template must not reveal other tenants' use
        .annotate(
            vm_count=Count(
                "vms",
                filter=~Q(vms__state=VMState.DONE) & Q(vms__project__in=Project.objects.restrict(request.user, "view")),
            )
        )
        .order_by("name")
    )
    ctx = {
        "templates": templates,
        "form": form,
        "form_open": form is not None and bool(form.errors),
        "can_create_vm": _project_context(request)["can_create"],
    }
    status = 400 if form is not None and form.errors else 200
    return render(request, "compute/template_list.html", ctx, status=status)


# --------------------------------------------------------------------------------------------
# hosts (cloud admins)
# --------------------------------------------------------------------------------------------
def _admin_or_404(request: HttpRequest) -> None:
    if not is_cloud_admin(request.user):
        raise Http404("not found")


HOST_COLUMNS = [
    Column("name", "Host", "name"), Column("state", "State", "state"),
    Column("cluster", "Cluster · labels", "cluster__name"), Column("vcpu", "vCPU", "alloc_vcpu"),
    Column("memory", "Memory", "alloc_memory_mb"), Column("vms", "VMs", None, "c-num"),
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
    return {"host": decorate_host(host), "host_actions": HOST_ACTIONS}


@login_required
def host_list(request: HttpRequest, form: HostForm | None = None) -> HttpResponse:
    _admin_or_404(request)
    visible = Host.objects.restrict(request.user, "view")
    by_state = dict(visible.order_by().values_list("state").annotate(n=Count("pk")))
    table = Table(request, visible.select_related("cluster"), HOST_COLUMNS, default_sort="name",
                  total=sum(by_state.values()))  # fmt: skip
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
    try:
        host = services.set_host_state(request.user, pk, action, ip=client_ip(request))
        note = ""
    except ServiceError as exc:
        note = exc.message
        host = None
    if request.headers.get("HX-Request"):
        fresh = hosts_with_counts(request.user).filter(pk=pk).first()
        if fresh is None:
            raise Http404("host not found")
        html = render_to_string(
            "compute/_partials/_host_live.html", {**host_partial_context(fresh), "note": note}, request=request
        )
        html += _toast(note) if note else _toast(f"Host {fresh.name}: {action} done.", "success")
        return HttpResponse(html)
    if note:
        messages.error(request, note)
    elif host is not None:
        messages.success(request, f"Host {host.name}: {action} done.")
    return _back(request, "ui-host-list")


@login_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_404(request)
    host = hosts_with_counts(request.user).filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    vms = VirtualMachine.objects.restrict(request.user, "view").filter(host=host).exclude(state=VMState.DONE)
    vms = with_rights(request.user, vms.select_related("owner", "host", "project__organization"), manage=None)
    return render(request, "compute/host_detail.html", {**host_partial_context(host), "vms": vms})


@login_required
def host_metrics(request: HttpRequest, pk: int) -> HttpResponse:
    from monitoring.models import Kind

    _admin_or_404(request)
    host = Host.objects.restrict(request.user, "view").filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    return JsonResponse(_last_hour(Kind.HOST, host.pk, [10, 11, 12, 13]))
