"""Django admin for the storage manager: the operators' fallback console. Managed state is
read-only here; changes go through ``storage.services`` (admin actions), as everywhere else."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.admin import ReadOnlyStateAdmin
from portal.errors import ServiceError

from .models import TemplateDisk, VMDisk, Volume, VolumeSnapshot
from .services import volumes as svc


@admin.register(Volume)
class VolumeAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "project", "state", "size_bytes", "format", "vm", "target", "datastore", "created_at"]
    list_filter = ["state", "format", "datastore"]
    search_fields = ["name", "uuid", "path"]
    actions = ["detach", "delete_volumes", "recover"]

    def _each(self, request: HttpRequest, qs: QuerySet[Volume], fn: Any) -> None:
        for vol in qs:
            try:
                fn(request.user, vol.pk)
            except ServiceError as exc:
                messages.error(request, f"{vol}: {exc.message}")

    @admin.action(description="Detach from their VM")
    def detach(self, request: HttpRequest, qs: QuerySet[Volume]) -> None:
        self._each(request, qs, svc.detach_volume)

    @admin.action(description="Recover: abandon the operation in flight")
    def recover(self, request: HttpRequest, qs: QuerySet[Volume]) -> None:
        self._each(request, qs, svc.recover_volume)

    @admin.action(description="Delete (refused while attached)")
    def delete_volumes(self, request: HttpRequest, qs: QuerySet[Volume]) -> None:
        self._each(request, qs, svc.delete_volume)


@admin.register(VolumeSnapshot)
class VolumeSnapshotAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "volume", "tag", "ready", "created_at"]


@admin.register(VMDisk)
class VMDiskAdmin(ReadOnlyStateAdmin):
    list_display = ["vm", "target", "kind", "image", "volume", "clone", "persistent", "volatile", "state", "path"]
    list_filter = ["kind", "clone", "state"]


@admin.register(TemplateDisk)
class TemplateDiskAdmin(ReadOnlyStateAdmin):
    list_display = ["template", "position", "image", "size_bytes"]
