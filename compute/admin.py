"""Django admin: the operators' fallback console. Managed state is read-only here; changes
go through the services (admin actions), as everywhere else."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from monitoring.models import AuditRecord
from portal.admin import ReadOnlyStateAdmin
from portal.errors import ServiceError

from . import services
from .models import BootImage, Cluster, Host, VirtualMachine, VMTemplate


def _run(request: HttpRequest, objs: QuerySet[Any], fn: Any) -> None:
    for obj in objs:
        try:
            fn(obj)
        except ServiceError as exc:
            messages.error(request, f"{obj}: {exc.message}")


@admin.register(Host)
class HostAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "cluster", "state", "uri", "alloc_vcpu", "total_vcpu", "alloc_memory_mb", "total_memory_mb"]
    list_filter = ["state", "cluster", "hypervisor"]
    actions = ["enable", "disable"]

    @admin.action(description="Enable selected hosts")
    def enable(self, request: HttpRequest, qs: QuerySet[Host]) -> None:
        _run(request, qs, lambda h: services.set_host_state(request.user, h.pk, "enable"))

    @admin.action(description="Disable selected hosts")
    def disable(self, request: HttpRequest, qs: QuerySet[Host]) -> None:
        _run(request, qs, lambda h: services.set_host_state(request.user, h.pk, "disable"))


@admin.register(VirtualMachine)
class VirtualMachineAdmin(ReadOnlyStateAdmin):
    list_display = ["id", "name", "project", "owner", "state", "operation", "host", "vcpu", "memory_mb"]
    list_filter = ["state", "host"]
    search_fields = ["name"]
    actions = ["terminate_hard", "recover_delete"]

    @admin.action(description="Terminate (hard)")
    def terminate_hard(self, request: HttpRequest, qs: QuerySet[VirtualMachine]) -> None:
        req = services.ActionRequest(action="terminate", hard=True)
        _run(request, qs, lambda vm: services.perform_action(request.user, vm.pk, req))

    @admin.action(description="Recover: delete")
    def recover_delete(self, request: HttpRequest, qs: QuerySet[VirtualMachine]) -> None:
        req = services.ActionRequest(action="recover", recover="delete")
        _run(request, qs, lambda vm: services.perform_action(request.user, vm.pk, req))


@admin.register(AuditRecord)
class AuditAdmin(ReadOnlyStateAdmin):
    list_display = ["created_at", "actor_name", "action", "object_type", "object_name", "source_ip", "result"]
    list_filter = ["action", "object_type"]


admin.site.register(Cluster)
admin.site.register(BootImage)
admin.site.register(VMTemplate)
