"""Live state in the browser (CONVENTIONS §8).

Services publish ``{"type": "vm.changed", "vm": pk, "project": id, "v": version}`` to
``project.<id>`` and ``cloud.admin`` after commit (``portal.events``). Each server process
hears it once, through its ``HUB`` (``portal.fanout.Hub``, subscribed to the groups of its
own sockets), which hands ``fan_out`` the message with the process's sockets that joined one
of those groups. The fan-out checks every socket's rights in memory, renders the same
partials the pages use (marked ``hx-swap-oob``; a row and a panel go as separate frames)
**once per version and kind of viewer**, and queues the same texts on every socket of that
kind; each socket's own writer task sends them through the ASGI ``send`` (any ASGI server),
so a slow or broken socket delays or breaks no other. A socket's queue is bounded
(``NEPHELE_LIVE_SOCKET_BUFFER``) and so is what it was sent and its page has not acknowledged
(``ACK_WINDOW``; the page acknowledges every ``ACK_EVERY`` messages): a page that stopped
reading is closed (``CLOSE_FELL_BEHIND``) and reconnects, re-reading what it shows. htmx's websocket
extension swaps the partials in where the page has them. A socket's rights are re-read in
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
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from django.template.loader import render_to_string
from django.utils.html import escape
from redis.exceptions import RedisError

from portal.events import ADMIN_GROUP, project_group
from portal.fanout import Hub
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


ACK_EVERY = 16  # the page acknowledges every this many messages (static/js/nephele.js)
ACK_WINDOW = 4 * ACK_EVERY  # messages a socket may have been sent and not acknowledged
REFETCH_TEXT = json.dumps({"type": "refetch"})  # "re-read what you show": pushes were lost
# Close codes, in the application range (servers may send only 1000 or 3000–4999; daphne
# refuses others): the page reconnects after a pause on both (static/js/nephele.js).
CLOSE_UNAVAILABLE = 4011  # the hub could not subscribe the socket's groups (Redis down)
CLOSE_FELL_BEHIND = 4013  # the socket's queue was full: its page stopped reading
_CLOSING: set[asyncio.Task[None]] = set()  # closes of dropped sockets, kept until done


class LiveConsumer(AsyncWebsocketConsumer):
    """One browser tab's websocket: joins the hub with its groups; its writer task sends what
    the fan-out queues for it."""

    # Pushes come through the process's hub, not through a channel-layer channel per socket.
    channel_layer_alias = None

    rights = NO_RIGHTS
    dropped = False  # closed for falling behind, or its send failed: gets nothing more

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        self.buffer: int = settings.NEPHELE_LIVE_SOCKET_BUFFER
        self.pending: deque[str] = deque()  # queued, not yet handed to the ASGI send
        self.sent = self.acked = 0  # messages sent / acknowledged by the page
        self._wake, self._credit = asyncio.Event(), asyncio.Event()
        self.rights = await rights_of(self.user.pk)
        _warm_up()
        try:
            await HUB.join(self, self.groups_wanted())  # live before the accept: nothing is missed
        except RedisError as exc:
            log.warning("live socket of %s refused: %s", self.user, exc)
            await self.close(code=CLOSE_UNAVAILABLE)  # the page reconnects after a pause, polls meanwhile
            return
        await self.accept()
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write())
        self._writer.add_done_callback(self._writer_done)
        self._keeper = loop.create_task(self._keep_rights())

    async def disconnect(self, code: int) -> None:
        self.dropped = True
        HUB.leave(self)
        for name in ("_keeper", "_writer"):
            task = getattr(self, name, None)
            if task is not None:
                task.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page's acknowledgements: ``{"type": "ack", "n": <messages received>}``."""
        try:
            ack = json.loads(text_data or "")
            n = int(ack["n"]) if isinstance(ack, dict) and ack.get("type") == "ack" else None
        except (ValueError, KeyError, TypeError):
            n = None
        if n is None:
            log.debug("live socket of %s: ignoring %r", self.user, (text_data or "")[:80])
            return
        self.acked = max(self.acked, min(n, self.sent))
        self._credit.set()

    def push(self, texts: Sequence[str]) -> None:
        """Queue messages for this socket (never waits). A socket whose queue is full is dropped."""
        if self.dropped or not texts:
            return
        if len(self.pending) + len(texts) > self.buffer:
            self.drop(f"{len(self.pending)} messages unsent")
            return
        self.pending.extend(texts)
        self._wake.set()

    def drop(self, why: str) -> None:
        """Stop pushing to this socket and close it (the page reconnects and re-reads)."""
        if self.dropped:
            return
        log.info("live socket of %s dropped: %s", self.user, why)
        self.dropped = True
        HUB.leave(self)
        self.pending.clear()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.cancel()
        task = asyncio.get_running_loop().create_task(self._close_dropped())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    async def _close_dropped(self) -> None:
        try:
            await self.close(code=CLOSE_FELL_BEHIND)
        except (RuntimeError, OSError) as exc:  # already closed by the server or the client
            log.debug("live socket of %s: close: %s", self.user, exc)

    async def _write(self) -> None:
        """Hand the queued messages to the ASGI send, one at a time, within the ack window."""
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            while self.sent - self.acked >= ACK_WINDOW:  # the page stopped reading: let the queue fill
                self._credit.clear()
                await self._credit.wait()
            await self.send(text_data=self.pending.popleft())
            self.sent += 1

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """A send that raised ends this socket's pushes only (its own task, nobody else's)."""
        if task.cancelled():
            return
        exc = task.exception()
        log.debug("live socket of %s: sending failed: %r", self.user, exc)
        self.dropped = True
        HUB.leave(self)

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
        while not self.dropped:
            await asyncio.sleep(RIGHTS_TTL_S * random.uniform(0.8, 1.0))
            try:
                self.rights = await rights_of(self.user.pk)
            except DatabaseError as exc:
                log.warning("live socket of %s: could not re-read rights: %s", self.user, exc)
                continue
            groups = self.groups_wanted()
            if not self.dropped and tuple(groups) != HUB.groups_of(self):
                try:
                    await HUB.join(self, groups)
                except RedisError as exc:
                    log.warning("live socket of %s: could not join %s: %s", self.user, groups, exc)


class _Outbox:
    """The messages a batch owes each socket, queued on it in one go at the end of the pass."""

    def __init__(self) -> None:
        self.texts: dict[LiveConsumer, list[str]] = {}

    def add(self, consumers: Sequence[LiveConsumer], frames: Frames) -> None:
        if not frames:
            return
        for c in consumers:
            texts = self.texts.get(c)
            if texts is None:
                self.texts[c] = list(frames)
            else:
                texts.extend(frames)

    def flush(self) -> None:
        for c, texts in self.texts.items():
            c.push(texts)


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


async def _refetch(event: dict[str, Any], members: list[LiveConsumer], out: _Outbox) -> None:
    """The hub's subscription had a gap: every page re-reads its live regions."""
    out.add(members, (REFETCH_TEXT,))


_FAN_OUT: dict[str, Callable[[dict[str, Any], list[LiveConsumer], _Outbox], Awaitable[None]]] = {
    "refetch": _refetch,
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
    out.flush()
    log.debug(
        "fan-out of %d messages to %d sockets: rendered in %.1f ms, queued in %.1f ms; CPU %.1f ms + %.1f ms rendering",
        len(batch),
        len(out.texts),
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
    from .views_hosts import host_partial_context, hosts_with_counts

    host = hosts_with_counts(user).filter(pk=pk).first()
    if host is None:
        return ()
    ctx = {**host_partial_context(host), "user": user, "request": _Request(user), "oob": True}
    return (
        render_to_string("compute/_partials/_host_row.html", ctx),
        render_to_string("compute/_partials/_host_panel.html", ctx),
    )
