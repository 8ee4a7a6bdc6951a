"""Browser pages for compute: VMs (live), templates, hosts. Every read goes through the access
gate; every change through a service; service refusals become messages, never a 500."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from portal.api import client_ip
from portal.errors import ServiceError
from portal.querysets import is_cloud_admin
from tenants import quotas
from tenants.models import Project

from . import services
from .forms import CreateVMForm, HostForm, TemplateForm
from .models import Host, VirtualMachine, VMTemplate
from .states import RECOVER_OPTIONS, VMState

HOST_ACTIONS = [("enable", "Enable"), ("disable", "Disable"), ("offline", "Offline")]


def _oob_error(note: str) -> str:
    return format_html(
        '<ul class="messages" id="messages" hx-swap-oob="true"><li class="error" role="alert">{}</li></ul>', note
    )


def _vm_or_404(request: HttpRequest, pk: int) -> VirtualMachine:
    vm = (
        VirtualMachine.objects.restrict(request.user, "view")
        .select_related("host", "owner", "project", "template")
        .filter(pk=pk)
        .first()
    )
    if vm is None:
        raise Http404("virtual machine not found")
    return vm


def _project_context(request: HttpRequest) -> dict[str, Any]:
    project = getattr(request, "project", None)
    if project is None:
        return {}
    return {
        "quota_lines": [q for q in quotas.usage(project) if q.resource in ("vms", "running_vms", "vcpu", "memory_mb")],
        "can_create": Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists(),
    }


@login_required
def vm_list(request: HttpRequest) -> HttpResponse:
    show_all = is_cloud_admin(request.user) and request.GET.get("all") == "1"
    show_done = request.GET.get("done") == "1"
    vms = VirtualMachine.objects.restrict(request.user, "view").select_related("host", "owner")
    if not show_all:
        vms = vms.filter(project=getattr(request, "project", None))
    if not show_done:
        vms = vms.exclude(state=VMState.DONE)
    ctx = {
        "vms": vms[:500],
        "show_all": show_all,
        "show_done": show_done,
        "create_form": CreateVMForm(user=request.user),
    }
    ctx.update(_project_context(request))
    return render(request, "compute/vm_list.html", ctx)


@login_required
@require_POST
def vm_create(request: HttpRequest) -> HttpResponse:
    form = CreateVMForm(request.POST, user=request.user)
    project = getattr(request, "project", None)
    if form.is_valid() and project is not None:
        d = form.cleaned_data
        try:
            vms = services.create_vms(
                request.user, project=project, template=d["template"], name=d["name"], count=d["count"],
                vcpu=d["vcpu"], memory_mb=d["memory_mb"], hold=d["hold"], ip=client_ip(request),
            )  # fmt: skip
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{len(vms)} VM(s) created; the scheduler is placing them.")
            return redirect("ui-vm-list")
    vms = VirtualMachine.objects.restrict(request.user, "view").filter(project=project).exclude(state=VMState.DONE)
    ctx = {"vms": vms.select_related("host", "owner"), "create_form": form, **_project_context(request)}
    return render(request, "compute/vm_list.html", ctx, status=400)


@login_required
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm_or_404(request, pk)
    ctx = {
        "vm": vm,
        "changes": vm.state_changes.order_by("-pk")[:50],
        "placements": vm.placements.select_related("host"),
        "recover_options": RECOVER_OPTIONS,
        "hosts": Host.objects.restrict(request.user, "view").filter(state="MONITORED")
        if is_cloud_admin(request.user)
        else [],
    }
    return render(request, "compute/vm_detail.html", ctx)


@login_required
def vm_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The row and panel of one VM, as pushed over the websocket (polling fallback)."""
    vm = _vm_or_404(request, pk)
    return HttpResponse(render_to_string("compute/_partials/_vm_live.html", {"vm": vm}, request=request))


@login_required
def vm_metrics(request: HttpRequest, pk: int) -> HttpResponse:
    """The VM's series for its charts (same data as the API's /vms/<id>/metrics/)."""
    from django.http import JsonResponse

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


@login_required
def host_metrics(request: HttpRequest, pk: int) -> HttpResponse:
    from django.http import JsonResponse

    from monitoring.models import Kind

    _admin_or_404(request)
    host = Host.objects.restrict(request.user, "view").filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    return JsonResponse(_last_hour(Kind.HOST, host.pk, [10, 11, 12, 13]))


@login_required
@require_POST
def vm_action(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm_or_404(request, pk)
    p = request.POST

    def num(key: str) -> int | None:
        return int(p[key]) if p.get(key, "").strip().lstrip("-").isdigit() else None

    req = services.ActionRequest(
        action=p.get("action", ""), hard=bool(p.get("hard")), live=bool(p.get("live")),
        host_id=num("host"), recover=p.get("recover", ""), vcpu=num("vcpu"), memory_mb=num("memory_mb"),
    )  # fmt: skip
    try:
        vm = services.perform_action(request.user, vm.pk, req, ip=client_ip(request))
        status, note = 200, ""
    except ServiceError as exc:
        status, note = exc.status, exc.message
    if request.headers.get("HX-Request"):
        vm = _vm_or_404(request, pk)
        html = render_to_string("compute/_partials/_vm_live.html", {"vm": vm}, request=request)
        if note:
            html += _oob_error(note)
        # 200 so htmx swaps the out-of-band parts; the refusal is in the message
        return HttpResponse(html, headers={"X-Nephele-Status": str(status)})
    if note:
        messages.error(request, note)
    else:
        messages.success(request, f"{req.action} requested for {vm.name}.")
    return redirect("ui-vm-detail", pk=pk)


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    project = getattr(request, "project", None)
    can_manage = project is not None and Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists()
    form = None
    if can_manage:
        form = TemplateForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            tpl = form.save(commit=False)
            tpl.project, tpl.owner, tpl.required_labels = project, request.user, form.cleaned_data["labels"]
            tpl.save()
            messages.success(request, f"Template {tpl.name} created.")
            return redirect("template-list")
    templates = (
        VMTemplate.objects.restrict(request.user, "view").select_related("boot_image", "cluster").order_by("name")
    )
    return render(request, "compute/template_list.html", {"templates": templates, "form": form})


def _admin_or_404(request: HttpRequest) -> None:
    if not is_cloud_admin(request.user):
        raise Http404("not found")


@login_required
def host_list(request: HttpRequest, form: HostForm | None = None) -> HttpResponse:
    _admin_or_404(request)
    hosts = (
        Host.objects.restrict(request.user, "view")
        .select_related("cluster")
        .annotate(vm_count=Count("vms", filter=~Q(vms__state=VMState.DONE)))
    )
    ctx = {"hosts": hosts, "form": form or HostForm(), "host_actions": HOST_ACTIONS}
    return render(request, "compute/host_list.html", ctx, status=400 if form is not None else 200)


@login_required
@require_POST
def host_register(request: HttpRequest) -> HttpResponse:
    _admin_or_404(request)
    form = HostForm(request.POST)
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
    try:
        services.set_host_state(request.user, pk, request.POST.get("action", ""), ip=client_ip(request))
        note = ""
    except ServiceError as exc:
        note = exc.message
    if request.headers.get("HX-Request"):
        host = Host.objects.annotate(vm_count=Count("vms", filter=~Q(vms__state=VMState.DONE))).filter(pk=pk).first()
        if host is None:
            raise Http404("host not found")
        html = render_to_string(
            "compute/_partials/_host_row.html",
            {"host": host, "oob": True, "host_actions": HOST_ACTIONS},
            request=request,
        )
        if note:
            html += _oob_error(note)
        return HttpResponse(html)
    if note:
        messages.error(request, note)
    return redirect("ui-host-list")


@login_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _admin_or_404(request)
    host = Host.objects.restrict(request.user, "view").select_related("cluster").filter(pk=pk).first()
    if host is None:
        raise Http404("host not found")
    vms = VirtualMachine.objects.filter(host=host).exclude(state=VMState.DONE).select_related("owner", "host")
    return render(request, "compute/host_detail.html", {"host": host, "vms": vms})
