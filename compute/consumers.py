"""Live state in the browser (CONVENTIONS §8).

Services publish ``{"type": "vm.changed", "vm": pk, "project": id, "v": version}`` to
``project.<id>`` and ``cloud.admin`` after commit (``portal.events``). Each server process
hears it once, through the one subscription of its ``HUB`` (``portal.fanout.Hub``), which
hands ``fan_out`` the message with the process's sockets that joined one of those groups.
The fan-out checks every socket's rights in memory, renders the same partials the pages use
(marked ``hx-swap-oob``; a row and a panel go as separate frames) **once per version and
kind of viewer**, and writes the same encoded frames to every socket of that kind; htmx's
websocket extension swaps them in where the page has them. A socket's rights are re-read in
the background every ``RIGHTS_TTL_S`` (shared by a user's tabs; a revoked role stops the
pushes, a new role starts them), never on the path of a push. docs/monitoring.md tells the
design and its figures (bench/events.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError
from django.template.loader import render_to_string
from django.utils.html import escape

from portal.events import ADMIN_GROUP, project_group
from portal.fanout import RAW_FRAMES_KEY, Hub, RawFrames, text_frame
from tenants.models import Project
from tenants.querysets import allowed_projects, is_cloud_admin, is_cloud_auditor

from .models import VirtualMachine

log = logging.getLogger(__name__)

Frames = tuple[str, ...]  # websocket messages, each one self-contained HTML
_RENDERED: OrderedDict[tuple[Any, ...], Frames] = OrderedDict()
_RENDERED_MAX = 2048
RIGHTS_TTL_S = 30  # a tab's rights are at most ~2× this old
# a socket whose rights could not be re-read for this long gets nothing (fail closed)
RIGHTS_STALE_S = 6 * RIGHTS_TTL_S


_RENDERING: dict[tuple[Any, ...], asyncio.Future[Frames]] = {}

_POOLS: dict[tuple[int, str], ThreadPoolExecutor] = {}
_THREAD_CPU: dict[str, float] = {}  # CPU seconds spent in each live thread (for the fan-out's debug log)
R = TypeVar("R")


def _live_thread(name: str) -> Callable[[Callable[..., R]], Callable[..., Coroutine[Any, Any, R]]]:
    """Run a function in one of the fan-out's own threads ("render", "rights"), which keep
    their database connection from call to call.

    Off the thread that serves connects (a render waits for no handshake), and without the
    connection set-up that ``database_sync_to_async`` pays on every call under the settings'
    ``CONN_MAX_AGE = 0``. A database error drops the connection; the next call opens one."""

    def wrap(func: Callable[..., R]) -> Callable[..., Coroutine[Any, Any, R]]:
        def run(*args: Any) -> R:
            from django.db import connection

            cpu = time.thread_time()
            try:
                return func(*args)
            except DatabaseError:
                connection.close()
                raise
            finally:
                _THREAD_CPU[name] = _THREAD_CPU.get(name, 0.0) + time.thread_time() - cpu

        async def call(*args: Any) -> R:
            key = (os.getpid(), name)  # a forked child starts its own thread
            pool = _POOLS.get(key)
            if pool is None:
                pool = _POOLS[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nephele-live-{name}")
            return await sync_to_async(run, thread_sensitive=False, executor=pool)(*args)

        call.func = func  # type: ignore[attr-defined]
        return call

    return wrap


async def _rendered(key: tuple[Any, ...], render: Callable[[], Awaitable[Frames]]) -> Frames:
    """The frames for ``key``, rendered once however many ask at the same moment."""
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
        future.exception()  # retrieved: the waiters, if any, re-raise it
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


@dataclass(frozen=True)
class Rights:
    """What a user may see and do, as read at ``at`` (``time.monotonic``)."""

    at: float
    admin: bool = False  # sees everything: a cloud admin or auditor
    staff: bool = False  # a cloud admin: sees hosts and operator forms, may act on every VM
    view: frozenset[int] = frozenset()
    manage: frozenset[int] = frozenset()


NO_RIGHTS = Rights(at=0.0)
_RIGHTS: dict[int, Rights] = {}  # user pk → rights, shared by the user's tabs in this process
_RIGHTS_LOADING: dict[tuple[asyncio.AbstractEventLoop, int], asyncio.Future[Rights]] = {}


@_live_thread("rights")
def _load_rights(user_pk: int) -> Rights:
    """Re-read the user (a deactivated or demoted user loses the pushes) and their projects."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_pk, is_active=True).first()
    if user is None:
        return Rights(at=time.monotonic())
    view = frozenset(Project.objects.filter(pk__in=allowed_projects(user, "view")).values_list("pk", flat=True))
    manage = frozenset(Project.objects.filter(pk__in=allowed_projects(user, "manage")).values_list("pk", flat=True))
    staff = is_cloud_admin(user)
    return Rights(at=time.monotonic(), admin=staff or is_cloud_auditor(user), staff=staff, view=view, manage=manage)


async def rights_of(user_pk: int, max_age: float | None = None) -> Rights:
    """The user's rights, read at most ``max_age`` (RIGHTS_TTL_S) seconds ago; one read at a time per user."""
    known = _RIGHTS.get(user_pk)
    if known is not None and time.monotonic() - known.at <= (RIGHTS_TTL_S if max_age is None else max_age):
        return known
    key = (asyncio.get_running_loop(), user_pk)
    pending = _RIGHTS_LOADING.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[Rights] = asyncio.get_running_loop().create_future()
    _RIGHTS_LOADING[key] = future
    try:
        rights = await _load_rights(user_pk)
        future.set_result(rights)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiters, if any, re-raise it
        raise
    finally:
        _RIGHTS_LOADING.pop(key, None)
    _RIGHTS[user_pk] = rights
    return rights


class LiveConsumer(AsyncWebsocketConsumer):
    """One browser tab's websocket: joins the hub with its groups; the fan-out writes to it."""

    # Pushes come through the process's hub, not through a channel-layer channel per socket.
    channel_layer_alias = None

    rights = NO_RIGHTS

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.raw: RawFrames | None = self.scope.get(RAW_FRAMES_KEY)
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        self.rights = await rights_of(self.user.pk)
        _warm_up()
        await HUB.join(self, self.groups_wanted())  # live before the accept: nothing is missed
        await self.accept()
        self._keeper = asyncio.get_running_loop().create_task(self._keep_rights())

    async def disconnect(self, code: int) -> None:
        HUB.leave(self)
        keeper = getattr(self, "_keeper", None)
        if keeper is not None:
            keeper.cancel()

    def groups_wanted(self) -> list[str]:
        if self.rights.admin:
            return [ADMIN_GROUP]
        return [project_group(pk) for pk in sorted(self.rights.view)]

    def may_see(self, project: int | None) -> bool:
        """Whether this socket's user may see objects of ``project`` (rights held in memory)."""
        rights = self.rights
        if time.monotonic() - rights.at > RIGHTS_STALE_S:
            return False
        return rights.admin or project in rights.view

    def may_manage(self, project: int | None) -> bool:
        return self.rights.staff or project in self.rights.manage

    async def _keep_rights(self) -> None:
        """Re-read the rights every ~RIGHTS_TTL_S (spread over time; shared by a user's tabs)."""
        while True:
            await asyncio.sleep(RIGHTS_TTL_S * random.uniform(0.8, 1.0))
            try:
                self.rights = await rights_of(self.user.pk)
            except DatabaseError as exc:
                log.warning("live socket of %s: could not re-read rights: %s", self.user, exc)
                continue
            groups = self.groups_wanted()
            if tuple(groups) != HUB.groups_of(self):
                await HUB.join(self, groups)


class _Outbox:
    """The frames a batch of messages owes each socket, written in one go per socket at the end.

    A frame is encoded once (``text_frame``) and the same bytes go to every socket served by
    daphne; sockets under another ASGI server (the tests' communicator) get the ASGI send."""

    def __init__(self) -> None:
        self.raw: dict[LiveConsumer, list[bytes]] = {}
        self.asgi: dict[LiveConsumer, list[str]] = {}

    def add(self, consumers: Sequence[LiveConsumer], frames: Frames) -> None:
        if not frames or not consumers:
            return
        data = b"".join(text_frame(f) for f in frames)
        for c in consumers:
            if c.raw is not None:
                self.raw.setdefault(c, []).append(data)
            else:
                self.asgi.setdefault(c, []).extend(frames)

    async def flush(self) -> None:
        for c, chunks in self.raw.items():
            c.raw.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))  # type: ignore[union-attr]
        for c, texts in self.asgi.items():
            try:
                for text in texts:
                    await c.send(text_data=text)
            except RuntimeError as exc:  # the socket closed under us
                log.debug("live socket gone: %s", exc)


async def _vm_changed(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    project, pk = event.get("project"), int(event["vm"])
    kinds: dict[tuple[bool, bool], list[LiveConsumer]] = {}
    for c in members:
        if c.may_see(project):
            kinds.setdefault((c.may_manage(project), c.rights.staff), []).append(c)
    for (manage, staff), consumers in kinds.items():
        # one render per version of the VM and kind of viewer (what the partials vary on)
        render = partial(_render_vm, consumers[0].user, pk, manage)
        out.add(consumers, await _rendered(("vm", pk, event.get("v"), manage, staff), render))


async def _event_new(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    consumers = [c for c in members if c.may_see(event.get("project"))]
    if consumers:
        pk = int(event["event"])
        out.add(consumers, await _rendered(("event", pk), partial(_render_event, pk)))


async def _vm_metrics(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    """The latest figures of a VM, for the live charts (the VM page appends them)."""
    consumers = [c for c in members if c.may_see(event.get("project"))]
    pk, figures = int(event["vm"]), json.dumps(event["figures"])
    out.add(consumers, (f'<div id="vm-{pk}-sample" hx-swap-oob="true" data-figures="{escape(figures)}"></div>',))


async def _host_metrics(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    consumers = [c for c in members if c.rights.admin and c.may_see(None)]
    pk, figures = int(event["host"]), json.dumps(event["figures"])
    out.add(consumers, (f'<div id="host-{pk}-sample" hx-swap-oob="true" data-figures="{escape(figures)}"></div>',))


async def _host_changed(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    pk = int(event["host"])
    kinds: dict[bool, list[LiveConsumer]] = {}
    for c in members:
        if c.rights.admin and c.may_see(None):
            kinds.setdefault(c.rights.staff, []).append(c)
    for consumers in kinds.values():
        out.add(consumers, await _render_host(consumers[0].user, pk))


_FAN_OUT: dict[str, Callable[[dict[str, Any], list[LiveConsumer], _Outbox], Awaitable[None]]] = {
    "vm.changed": _vm_changed,
    "event.new": _event_new,
    "vm.metrics": _vm_metrics,
    "host.metrics": _host_metrics,
    "host.changed": _host_changed,
}


async def fan_out(batch: list[tuple[dict[str, Any], list[LiveConsumer]]]) -> None:
    """Deliver published messages to this process's sockets that joined their groups, in order."""
    out = _Outbox()
    started, cpu, render_cpu = time.perf_counter(), time.thread_time(), _THREAD_CPU.get("render", 0.0)
    for message, members in batch:
        handler = _FAN_OUT.get(str(message.get("type")))
        if handler is None:
            log.warning("live channel: no fan-out for message type %r", message.get("type"))
            continue
        await handler(message, members, out)
    rendered = time.perf_counter()
    await out.flush()
    log.debug(
        "fan-out of %d messages to %d sockets: rendered in %.1f ms, written in %.1f ms; CPU %.1f ms + %.1f ms rendering",
        len(batch),
        len(out.raw) + len(out.asgi),
        1000 * (rendered - started),
        1000 * (time.perf_counter() - rendered),
        1000 * (time.thread_time() - cpu),
        1000 * (_THREAD_CPU.get("render", 0.0) - render_cpu),
    )


HUB: Hub[LiveConsumer] = Hub(fan_out)


_WARM: set[int] = set()


def _warm_up() -> None:
    """On a process's first websocket, load and compile the partials in the render thread, so
    the first change after a restart is not seconds late (imports, template compilation)."""
    if os.getpid() in _WARM:
        return
    _WARM.add(os.getpid())
    task = asyncio.get_running_loop().create_task(_compile_partials())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors surface at the first push


@_live_thread("render")
def _compile_partials() -> None:
    from django.template.loader import get_template

    from . import views  # noqa: F401  (what the row renders import)

    for name in ("_vm_row", "_vm_panel", "_host_row", "_host_panel"):
        get_template(f"compute/_partials/{name}.html")
    get_template("monitoring/_event_live.html")


@_live_thread("render")
def _render_vm(user: Any, pk: int, manage: bool) -> Frames:
    """The VM's row and its panel, loaded through the access gate as ``user`` sees it.

    Two frames, because the ws extension parses a message as one fragment: a <tr> followed
    by the panel would put the parser in table mode and empty the panel's forms."""
    from .views import vm_partial_context, with_rights

    vm = (
        VirtualMachine.objects.restrict(user, "view")
        .select_related("host", "owner", "project__organization", "template")
        .filter(pk=pk)
        .first()
    )
    if vm is None:
        return ()
    with_rights(user, [vm], manage=None if manage else set())
    ctx = {**vm_partial_context(user, vm), "user": user, "request": _Request(user), "oob": True}
    return (
        render_to_string("compute/_partials/_vm_row.html", ctx),
        render_to_string("compute/_partials/_vm_panel.html", ctx),
    )


@_live_thread("render")
def _render_event(pk: int) -> Frames:
    from monitoring.models import Event

    e = Event.objects.filter(pk=pk).first()
    return (render_to_string("monitoring/_event_live.html", {"e": e}),) if e is not None else ()


@_live_thread("render")
def _render_host(user: Any, pk: int) -> Frames:
    """The host's row and panel, loaded through the access gate (cloud admins and auditors)."""
    from .views import host_partial_context, hosts_with_counts

    host = hosts_with_counts(user).filter(pk=pk).first()
    if host is None:
        return ()
    ctx = {**host_partial_context(host), "user": user, "request": _Request(user), "oob": True}
    return (
        render_to_string("compute/_partials/_host_row.html", ctx),
        render_to_string("compute/_partials/_host_panel.html", ctx),
    )
