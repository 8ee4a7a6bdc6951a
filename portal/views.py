"""Portal-wide pages: dashboard and the project switcher."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compute.models import Host, VirtualMachine
from compute.states import VMState
from portal.querysets import is_cloud_admin
from tenants.models import Project


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    vms = VirtualMachine.objects.restrict(request.user, "view").exclude(state=VMState.DONE)
    ctx = {"vm_count": vms.count(), "running": vms.filter(state=VMState.RUNNING).count()}
    if is_cloud_admin(request.user):
        ctx["hosts"] = Host.objects.restrict(request.user, "view")
    return render(request, "portal/dashboard.html", ctx)


@login_required
@require_POST
def switch_project(request: HttpRequest) -> HttpResponse:
    project = Project.objects.restrict(request.user, "view").filter(pk=request.POST.get("project")).first()
    if project is not None:
        request.session["project_id"] = project.pk
    return redirect(request.POST.get("next") or "dashboard")
