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
from .services import bootimages, clusters, templates


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


# Clusters, boot images and templates change through their services (validation, the access
# gate, the audit trail): the API and the pages create and edit them; here they are read-only,
# and deleting goes through the service (a 409 of the service becomes a message).
@admin.register(Cluster)
class ClusterAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "placement_policy", "monitor_interval_s"]
    actions = ["delete_through_service"]

    @admin.action(description="Delete selected clusters (refused while they are used)")
    def delete_through_service(self, request: HttpRequest, qs: QuerySet[Cluster]) -> None:
        _run(request, qs, lambda c: clusters.delete_cluster(request.user, c.pk))


@admin.register(BootImage)
class BootImageAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "project", "kind", "public"]
    list_filter = ["kind", "public"]
    actions = ["delete_through_service"]

    @admin.action(description="Delete selected boot images (refused while they are used)")
    def delete_through_service(self, request: HttpRequest, qs: QuerySet[BootImage]) -> None:
        _run(request, qs, lambda b: bootimages.delete_boot_image(request.user, b.pk))


@admin.register(VMTemplate)
class VMTemplateAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "project", "vcpu", "memory_mb", "disk_gb", "boot_image", "public"]
    list_filter = ["public"]
    search_fields = ["name"]
    actions = ["delete_through_service"]

    @admin.action(description="Delete selected templates")
    def delete_through_service(self, request: HttpRequest, qs: QuerySet[VMTemplate]) -> None:
        _run(request, qs, lambda t: templates.delete_template(request.user, t.pk))
