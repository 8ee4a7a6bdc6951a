"""Browser pages for compute (placeholder; filled by the UI work)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import VirtualMachine


@login_required
def vm_list(request: HttpRequest) -> HttpResponse:
    vms = VirtualMachine.objects.restrict(request.user, "view")
    return render(request, "compute/vm_list.html", {"vms": vms})
