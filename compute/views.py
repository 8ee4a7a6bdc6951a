"""Browser pages for compute: VMs (live) and templates (hosts: compute/views_hosts.py).

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
from portal.errors import InvalidInput, ServiceError
from portal.tables import Column, Table
from tenants import quotas
from tenants.models import Project
from tenants.querysets import is_cloud_admin, is_cloud_auditor

from . import hooks, services
from .forms import CreateVMForm, TemplateForm
from .models import Host, VirtualMachine, VMTemplate
from .services import console as console_service
from .services import templates as template_service
from .services.context import context_summary
from .states import FAILURES, RECOVER_OPTIONS, TRANSIENT, Action, HostState, VMState

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
    host = [Column("host", "Host", "host__name", "c-host", optional=True)] if user.is_staff or user.is_superuser else []
    return [
        Column("name", "Name", "name"), Column("state", "State", "state"), *host,
        Column("ip", "IP addresses", None, "c-ip", optional=True),  # the network manager's, by hook
        Column("size", "Size", "vcpu", "c-size", optional=True),
        Column("owner", "Owner", "owner__username", "c-owner", optional=True),
        Column("age", "Age", "pk", "c-age", optional=True),  # ids grow with creation: the primary key index
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


def with_addresses(vms: Iterable[VirtualMachine]) -> list[VirtualMachine]:
    """Set ``vm.ip_addresses`` on each VM from the managers that hand out addresses (the
    ``vm_addresses`` hook: the network manager's leases), one query per manager for all of them."""
    vms = list(vms)
    found: dict[int, list[str]] = {}
    if vms:
        for part in hooks.vm_addresses([vm.pk for vm in vms]):
            for pk, addresses in part.items():
                found.setdefault(pk, []).extend(addresses)
    for vm in vms:
        vm.ip_addresses = found.get(vm.pk, [])  # type: ignore[attr-defined]
    return vms


def vm_partial_context(user: Any, vm: VirtualMachine) -> dict[str, Any]:
    """What ``_vm_row.html`` and ``_vm_panel.html`` need beyond the VM (``vm.can_manage`` set)."""
    if not hasattr(vm, "ip_addresses"):
        with_addresses([vm])
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
def _vm_filters(request: HttpRequest) -> dict[str, Any]:
    """The VM list's filters from the query string: the VMs they select (through the gate,
    before the state chip) and their counts by state chip (one aggregate query)."""
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
    return {
        "base": base, "by_state": by_state, "groups": groups, "group": group, "query": query, "scope": scope,
        "scoped_project": scoped_project, "show_done": show_done, "cloud_wide": cloud_wide,
        "total": sum(by_state.values()),
    }  # fmt: skip


def _vm_list_context(request: HttpRequest, create_form: CreateVMForm | None = None) -> dict[str, Any]:
    user, get = request.user, request.GET
    f = _vm_filters(request)
    base, by_state, groups, group, query = f["base"], f["by_state"], f["groups"], f["group"], f["query"]
    scope, scoped_project, show_done, cloud_wide = f["scope"], f["scoped_project"], f["show_done"], f["cloud_wide"]
    vms = base
    if group:
        vms = vms.filter(state__in=STATE_GROUPS[group][1])
    shown = sum(n for s, n in by_state.items() if not group or s in STATE_GROUPS[group][1])
    table = Table(
        request, vms.select_related("host", "owner", "project__organization"), vm_columns(user),
        default_sort="-age", total=shown, name="vms",
    )  # fmt: skip
    rows = with_addresses(with_rights(user, table.rows))
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
        "create_form": create_form
        or CreateVMForm(
            user=user, project=getattr(request, "project", None), initial={"template": get.get("template")}
        ),
        "create_open": create_form is not None or get.get("create") == "1",
        "can_bulk": any(vm.can_manage for vm in rows),  # type: ignore[attr-defined]
        "bulk_actions": BULK_ACTIONS,
        "bulk_destructive": BULK_DESTRUCTIVE,
    }
    ctx.update(_project_context(request))
    if ctx["can_create"]:
        ctx.update(create_preview(request))
        ctx["my_key_count"] = _key_count(user)
    return ctx


def _key_count(user: Any) -> int:
    from tenants.models import SSHKey

    return SSHKey.objects.filter(user_id=user.pk).count()


@login_required
def vm_list(request: HttpRequest) -> HttpResponse:
    return render(request, "compute/vm_list.html", _vm_list_context(request))


@login_required
def vm_chips(request: HttpRequest) -> HttpResponse:
    """The VM list's state chips and their counts, for the same filters: re-read (htmx) when
    VM state pushes arrive, so the counts follow the rows (one aggregate query)."""
    return render(request, "compute/_partials/_vm_chips.html", _vm_filters(request))


#: what the VM list's bulk bar offers (actions that need no further input)
BULK_ACTIONS = ["resume", "release", "hold", "poweroff", "reboot", "suspend", "stop", "undeploy", "terminate"]
#: the ones that ask first
BULK_DESTRUCTIVE = frozenset({"terminate"})
MAX_BULK = 200  # the largest page of the list


def _bulk_ids(values: list[str]) -> list[int]:
    """The posted VM ids, each once, in order; a 400 naming the field and the limit otherwise."""
    if not values:
        raise InvalidInput("select at least one VM", field="vm")
    if len(values) > MAX_BULK:
        raise InvalidInput(f"vm: at most {MAX_BULK} VMs at once ({len(values)} selected)", field="vm")
    if not all(v.isdigit() and len(v) <= 18 for v in values):
        raise InvalidInput("vm must be VM ids", field="vm")
    return list(dict.fromkeys(int(v) for v in values))


@login_required
@require_POST
def vm_bulk(request: HttpRequest) -> HttpResponse:
    """One action on the selected VMs, each through ``perform_action`` (the gate and the state
    table decide per VM: one may be started while another answers 409); the outcome per VM.
    Destructive actions ask first (a confirmation unless ``confirmed=1``)."""
    action = request.POST.get("action", "")
    hx = bool(request.headers.get("HX-Request"))
    ctx: dict[str, Any] = {"action": action, "label": str(dict(Action.choices).get(action, action))}
    try:
        if action not in BULK_ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(BULK_ACTIONS)}", field="action")
        ids = _bulk_ids(request.POST.getlist("vm"))
    except ServiceError as exc:
        ctx["error"] = exc.message
        return render(request, "compute/vm_bulk.html" if not hx else "compute/_partials/_vm_bulk.html", ctx,
                      status=200 if hx else 400)  # fmt: skip
    names = dict(VirtualMachine.objects.restrict(request.user, "view").filter(pk__in=ids).values_list("pk", "name"))
    ctx["ids"] = ids
    if action in BULK_DESTRUCTIVE and request.POST.get("confirmed") != "1":
        ctx["confirm"] = [{"pk": pk, "name": names.get(pk, f"#{pk}")} for pk in ids]
    else:
        results = []
        for pk in ids:
            try:
                services.perform_action(request.user, pk, services.ActionRequest(action=action), ip=client_ip(request))
                results.append({"pk": pk, "name": names.get(pk, f"#{pk}"), "status": 202, "note": "requested"})
            except ServiceError as exc:
                results.append({"pk": pk, "name": names.get(pk, f"#{pk}"), "status": exc.status, "note": exc.message})
        ctx["results"] = results
        ctx["accepted"] = sum(1 for r in results if r["status"] == 202)
        if hx:  # the acted-on rows, swapped in place (the websocket would push them too)
            fresh = VirtualMachine.objects.restrict(request.user, "view").filter(pk__in=ids)
            ctx["rows"] = with_addresses(
                with_rights(request.user, fresh.select_related("host", "owner", "project__organization"))
            )
    return render(request, "compute/_partials/_vm_bulk.html" if hx else "compute/vm_bulk.html", ctx)


@login_required
@require_POST
def vm_create(request: HttpRequest) -> HttpResponse:
    project = getattr(request, "project", None)
    form = CreateVMForm(request.POST, user=request.user, project=project)
    if project is None:
        form.add_error(None, "Choose a project first (the switcher at the top).")
    elif form.is_valid():
        d = form.cleaned_data
        try:
            from_image = d["source"] == "image"
            vms = services.create_vms(
                request.user, project=project, template=None if from_image else d["template"],
                image=d["image"] if from_image else None, disk_gb=d["disk_gb"] if from_image else None,
                networks=d["networks"], security_groups=d["security_groups"], name=d["name"], count=d["count"],
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


#: the VM page's tabs (Sunstone's), in order; the lazy ones are fetched when first shown
VM_TABS = [
    ("info", "Info"), ("capacity", "Capacity"), ("storage", "Storage"), ("network", "Network"),
    ("snapshots", "Snapshots"), ("placement", "Placement"), ("log", "Log"), ("console", "Console"),
    ("monitoring", "Monitoring"),
]  # fmt: skip
LAZY_TABS = frozenset({"log", "monitoring"})


def _log_context(vm: VirtualMachine) -> dict[str, Any]:
    return {"vm": vm, "changes": list(vm.state_changes.order_by("-pk")[:50])}


#: the quota lines the create form projects (what a create consumes)
CREATE_QUOTAS = ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb")


def _int_in(value: str | None, low: int, high: int) -> int | None:
    number = _int_or_none(value)
    return number if number is not None and low <= number <= high else None


def create_preview(request: HttpRequest) -> dict[str, Any]:
    """The project's quota as it is and as it would be after the create the form describes
    (template, count, vCPU, memory from the query string or the form), for the form's side."""
    from .models import MAX_MEMORY_MB, MAX_VCPU

    project = getattr(request, "project", None)
    if project is None:
        return {"preview": []}
    data = request.POST if request.method == "POST" else request.GET
    template_id = _int_or_none(data.get("template"))
    from_image = data.get("source") == "image"
    tpl = None
    if from_image:
        pass  # the size is the form's own (vCPU, memory, disk)
    elif template_id is not None:
        tpl = VMTemplate.objects.restrict(request.user, "view").filter(pk=template_id).first()
    if tpl is None and not from_image:  # as the form preselects it: the smallest
        tpl = (
            VMTemplate.objects.restrict(request.user, "view")
            .order_by("vcpu", "memory_mb", "disk_gb", "name", "pk")
            .first()
        )
    count = _int_in(data.get("count"), 1, 100) or 1
    vcpu = _int_in(data.get("vcpu"), 1, MAX_VCPU) or (tpl.vcpu if tpl else 0)
    memory = _int_in(data.get("memory_mb"), 16, MAX_MEMORY_MB) or (tpl.memory_mb if tpl else 0)
    disk = (_int_in(data.get("disk_gb"), 0, 64 * 1024) or 0) if from_image else (tpl.disk_gb if tpl else 0)
    need = {"vms": count, "running_vms": count, "vcpu": vcpu * count, "memory_mb": memory * count,
            "system_disk_gb": disk * count}  # fmt: skip
    lines = []
    for q in quotas.usage(project):
        if q.resource not in CREATE_QUOTAS:
            continue
        after = q.used + need[q.resource]
        unlimited = q.limit < 0
        lines.append({
            "resource": q.resource, "label": q.label, "used": q.used, "need": need[q.resource], "after": after,
            "limit": q.limit, "unlimited": unlimited, "over": not unlimited and after > q.limit,
            "percent_used": 0 if unlimited or q.limit == 0 else min(100, round(100 * q.used / q.limit)),
            "percent_after": 0 if unlimited else (100 if q.limit == 0 else min(100, round(100 * after / q.limit))),
        })  # fmt: skip
    return {
        "preview": lines,
        "preview_template": tpl,
        "preview_count": count,
        "preview_over": any(x["over"] for x in lines),
    }


@login_required
def vm_create_preview(request: HttpRequest) -> HttpResponse:
    """The create form's quota projection, re-read (htmx) as its size and count change."""
    return render(request, "compute/_partials/_create_quota.html", create_preview(request))


@login_required
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm_or_404(request, pk)
    tab = request.GET.get("tab", "info")
    if tab not in dict(VM_TABS):
        tab = "info"
    ctx = vm_partial_context(request.user, vm)
    ctx["placements"] = vm.placements.select_related("host")[:50]
    ctx["vm_context"] = context_summary(vm)
    ctx["tabs"] = [{"key": k, "label": label, "lazy": k in LAZY_TABS} for k, label in VM_TABS]
    ctx["tab"] = tab
    if tab == "log":  # a costly tab asked for by its link (no JavaScript): rendered in the page
        ctx.update(_log_context(vm))
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
def vm_log(request: HttpRequest, pk: int) -> HttpResponse:
    """The VM page's Log tab (its state changes), fetched when the tab is first shown."""
    vm = _vm_or_404(request, pk)
    return render(request, "compute/_partials/_vm_log.html", _log_context(vm))


@login_required
def vm_monitoring(request: HttpRequest, pk: int) -> HttpResponse:
    """The VM page's Monitoring tab (its charts), fetched when the tab is first shown."""
    vm = _vm_or_404(request, pk)
    return render(request, "compute/_partials/_vm_monitoring.html", {"vm": vm})


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
            try:
                tpl = template_service.create_template(
                    request.user, project=project, ip=client_ip(request), **_template_changes(form)
                )
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
    # which of them the user may edit and delete, in one query (the same gate the services use)
    manageable = set(VMTemplate.objects.restrict(request.user, "manage").values_list("pk", flat=True))
    ctx = {
        "templates": templates,
        "manageable": manageable,
        "form": form,
        "form_open": form is not None and bool(form.errors),
        "can_create_vm": _project_context(request)["can_create"],
    }
    status = 400 if form is not None and form.errors else 200
    return render(request, "compute/template_list.html", ctx, status=status)


def _template_changes(form: TemplateForm) -> dict[str, Any]:
    """The service's keyword arguments from a valid template form."""
    d = form.cleaned_data
    return {
        "name": d["name"], "description": d["description"], "vcpu": d["vcpu"], "memory_mb": d["memory_mb"],
        "disk_gb": d["disk_gb"], "boot_image": d["boot_image"], "hypervisor": d["hypervisor"],
        "cluster": d["cluster"], "required_labels": d["labels"], "restart_policy": d["restart_policy"],
        "ha": d["ha"], "graphics": d["graphics"],
    }  # fmt: skip


def _manageable_template_or_404(request: HttpRequest, pk: int) -> VMTemplate:
    tpl = (
        VMTemplate.objects.restrict(request.user, "manage")
        .select_related("boot_image", "cluster", "project__organization")
        .filter(pk=pk)
        .first()
    )
    if tpl is None:  # foreign, view-only or missing: the same 404
        raise Http404("template not found")
    return tpl


@login_required
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a template the user manages (``compute.services.templates.update_template``)."""
    tpl = _manageable_template_or_404(request, pk)
    labels = "\n".join(f"{k}={v}" for k, v in (tpl.required_labels or {}).items())
    # the form validates a copy: the service decides and writes, from the row it locks
    form = TemplateForm(request.POST or None, user=request.user, instance=VMTemplate.objects.get(pk=tpl.pk),
                        initial={"labels": labels})  # fmt: skip
    if request.method == "POST" and form.is_valid():
        try:
            tpl = template_service.update_template(
                request.user, tpl.pk, ip=client_ip(request), **_template_changes(form)
            )
        except ServiceError as exc:
            field = "labels" if exc.field == "required_labels" else exc.field
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Template {tpl.name} saved.")
            return redirect("template-list")
    status = 400 if form.errors else 200
    return render(request, "compute/template_edit.html", {"template": tpl, "form": form}, status=status)


@login_required
@require_POST
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a template the user manages; a refusal (409: still referenced) is shown on the list."""
    try:
        tpl = _manageable_template_or_404(request, pk)
        name = tpl.name
        template_service.delete_template(request.user, tpl.pk, ip=client_ip(request))
    except ServiceError as exc:
        messages.error(request, f"{tpl.name}: {exc.message}")
    else:
        messages.success(request, f"Template {name} deleted.")
    return redirect("template-list")
