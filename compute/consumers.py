"""Live state in the browser (CONVENTIONS §8).

Services publish ``{"type": "vm.changed", "vm": pk}`` to ``project.<id>`` and ``cloud.admin``
after commit. The consumer loads the VM through the access gate, renders the same partials
the pages use, marked ``hx-swap-oob``, and htmx's websocket extension swaps them in.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db.models import Count, Q
from django.template.loader import render_to_string

from portal.events import ADMIN_GROUP, project_group
from portal.querysets import allowed_projects, is_cloud_admin, is_cloud_auditor
from tenants.models import Project

from .models import Host, VirtualMachine
from .states import VMState


class _Request:
    """What the partials need of a request (the user), for rendering outside a view."""

    def __init__(self, user: Any) -> None:
        self.user = user


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        self.groups_joined = await self._groups()
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    @database_sync_to_async
    def _groups(self) -> list[str]:
        if is_cloud_admin(self.user) or is_cloud_auditor(self.user):
            return [ADMIN_GROUP]
        ids = Project.objects.filter(pk__in=allowed_projects(self.user, "view")).values_list("pk", flat=True)
        return [project_group(pk) for pk in ids]

    async def vm_changed(self, event: dict[str, Any]) -> None:
        html = await self._render_vm(event["vm"])
        if html:
            await self.send(text_data=html)

    async def host_changed(self, event: dict[str, Any]) -> None:
        html = await self._render_host(event["host"])
        if html:
            await self.send(text_data=html)

    async def event_new(self, event: dict[str, Any]) -> None:
        html = await self._render_event(event["event"])
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _render_event(self, pk: int) -> str:
        from monitoring.models import Event

        e = Event.objects.restrict(self.user, "view").filter(pk=pk).first()
        return render_to_string("monitoring/_event_live.html", {"e": e}) if e is not None else ""

    @database_sync_to_async
    def _render_vm(self, pk: int) -> str:
        vm = (
            VirtualMachine.objects.restrict(self.user, "view")
            .select_related("host", "owner", "project", "template")
            .filter(pk=pk)
            .first()
        )
        if vm is None:
            return ""
        return render_to_string(
            "compute/_partials/_vm_live.html", {"vm": vm, "user": self.user, "request": _Request(self.user)}
        )

    @database_sync_to_async
    def _render_host(self, pk: int) -> str:
        host = (
            Host.objects.restrict(self.user, "view")
            .annotate(vm_count=Count("vms", filter=~Q(vms__state=VMState.DONE)))
            .select_related("cluster")
            .filter(pk=pk)
            .first()
        )
        if host is None:
            return ""
        from .views import HOST_ACTIONS

        ctx = {
            "host": host,
            "oob": True,
            "user": self.user,
            "host_actions": HOST_ACTIONS,
            "request": _Request(self.user),
        }
        return render_to_string("compute/_partials/_host_row.html", ctx)
