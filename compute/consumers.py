"""Live state in the browser (CONVENTIONS §8).

Services publish ``{"type": "vm.changed", "vm": pk, "project": id, "v": version}`` to
``project.<id>`` and ``cloud.admin`` after commit. The consumer checks the VM's project
against the rights of its user, renders the same partials the pages use (marked
``hx-swap-oob``; a row and a panel go as separate frames), and htmx's websocket extension
swaps them in where the page has them. Rendered partials are shared
by the consumers of a process (one render per version and kind of viewer), so a change
reaches a thousand browsers without a thousand database queries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import escape

from portal.events import ADMIN_GROUP, project_group
from portal.querysets import allowed_projects, is_cloud_admin, is_cloud_auditor
from tenants.models import Project

from .models import VirtualMachine

Frames = tuple[str, ...]  # websocket messages, each one self-contained HTML
_RENDERED: OrderedDict[tuple[Any, ...], Frames] = OrderedDict()
_RENDERED_MAX = 2048
RIGHTS_TTL_S = 30


_RENDERING: dict[tuple[Any, ...], asyncio.Future[Frames]] = {}


async def _rendered(key: tuple[Any, ...], render: Callable[[], Awaitable[Frames]]) -> Frames:
    """The frames for ``key``, rendered once however many consumers ask at the same moment."""
    frames = _RENDERED.get(key)
    if frames is not None:
        return frames
    pending = _RENDERING.get(key)
    if pending is not None:
        return await pending
    future: asyncio.Future[Frames] = asyncio.get_running_loop().create_future()
    _RENDERING[key] = future
    try:
        frames = await render()
        future.set_result(frames)
    except BaseException as exc:
        future.set_exception(exc)
        raise
    finally:
        _RENDERING.pop(key, None)
    _RENDERED[key] = frames
    if len(_RENDERED) > _RENDERED_MAX:
        _RENDERED.popitem(last=False)
    return frames


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
        await self._refresh_rights()
        self.groups_joined = [ADMIN_GROUP] if self.is_admin else [project_group(pk) for pk in self.view_projects]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    @database_sync_to_async
    def _load_rights(self) -> tuple[bool, set[int], set[int]]:
        admin = is_cloud_admin(self.user) or is_cloud_auditor(self.user)
        view = set(Project.objects.filter(pk__in=allowed_projects(self.user, "view")).values_list("pk", flat=True))
        manage = set(Project.objects.filter(pk__in=allowed_projects(self.user, "manage")).values_list("pk", flat=True))
        return admin, view, manage

    async def _refresh_rights(self) -> None:
        """What the user may see and do, re-read every RIGHTS_TTL_S (a revoked role stops the pushes)."""
        self.rights_at = time.monotonic()
        self.is_admin, self.view_projects, self.manage_projects = await self._load_rights()
        self.is_staff = is_cloud_admin(self.user)  # sees hosts and operator forms; may act on every VM

    async def _may_see(self, project: int | None) -> bool:
        if time.monotonic() - self.rights_at > RIGHTS_TTL_S:
            await self._refresh_rights()
        return self.is_admin or project in self.view_projects

    async def vm_changed(self, event: dict[str, Any]) -> None:
        project = event.get("project")
        if not await self._may_see(project):
            return
        manage = self.is_staff or project in self.manage_projects
        # one render per version of the VM and kind of viewer (what the partials vary on)
        key = ("vm", event["vm"], event.get("v"), manage, self.is_staff)
        for frame in await _rendered(key, lambda: self._render_vm(event["vm"], manage)):
            await self.send(text_data=frame)

    async def vm_metrics(self, event: dict[str, Any]) -> None:
        """The latest figures of a VM, for the live charts (the VM page appends them)."""
        if not await self._may_see(event.get("project")):
            return
        pk, figures = int(event["vm"]), json.dumps(event["figures"])
        await self.send(
            text_data=f'<div id="vm-{pk}-sample" hx-swap-oob="true" data-figures="{escape(figures)}"></div>'
        )

    async def host_metrics(self, event: dict[str, Any]) -> None:
        if not self.is_admin:
            return
        pk, figures = int(event["host"]), json.dumps(event["figures"])
        await self.send(
            text_data=f'<div id="host-{pk}-sample" hx-swap-oob="true" data-figures="{escape(figures)}"></div>'
        )

    async def event_new(self, event: dict[str, Any]) -> None:
        if not await self._may_see(event.get("project")):
            return
        for frame in await _rendered(("event", event["event"]), lambda: self._render_event(event["event"])):
            await self.send(text_data=frame)

    async def host_changed(self, event: dict[str, Any]) -> None:
        if not self.is_admin:
            return
        for frame in await self._render_host(event["host"]):
            await self.send(text_data=frame)

    @database_sync_to_async
    def _render_vm(self, pk: int, manage: bool) -> Frames:
        """The VM's row and its panel, loaded through the access gate as this user sees it.

        Two frames, because the ws extension parses a message as one fragment: a <tr> followed
        by the panel would put the parser in table mode and empty the panel's forms."""
        from .views import vm_partial_context, with_rights

        vm = (
            VirtualMachine.objects.restrict(self.user, "view")
            .select_related("host", "owner", "project__organization", "template")
            .filter(pk=pk)
            .first()
        )
        if vm is None:
            return ()
        with_rights(self.user, [vm], manage=None if manage else set())
        ctx = {**vm_partial_context(self.user, vm), "user": self.user, "request": _Request(self.user), "oob": True}
        return (
            render_to_string("compute/_partials/_vm_row.html", ctx),
            render_to_string("compute/_partials/_vm_panel.html", ctx),
        )

    @database_sync_to_async
    def _render_event(self, pk: int) -> Frames:
        from monitoring.models import Event

        e = Event.objects.filter(pk=pk).first()
        return (render_to_string("monitoring/_event_live.html", {"e": e}),) if e is not None else ()

    @database_sync_to_async
    def _render_host(self, pk: int) -> Frames:
        """The host's row and panel, loaded through the access gate (cloud admins and auditors)."""
        from .views import host_partial_context, hosts_with_counts

        host = hosts_with_counts(self.user).filter(pk=pk).first()
        if host is None:
            return ()
        ctx = {**host_partial_context(host), "user": self.user, "request": _Request(self.user), "oob": True}
        return (
            render_to_string("compute/_partials/_host_row.html", ctx),
            render_to_string("compute/_partials/_host_panel.html", ctx),
        )
