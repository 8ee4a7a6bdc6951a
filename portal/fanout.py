"""Live pushes: one Redis subscription per process, fanned out in process (docs/monitoring.md).

Channels' Redis layer gives every websocket its own channel and wakes every consumer's task
for every message: a change seen by 1,000 sockets cost 1,000 task wake-ups, 1,000 trips to
the database thread (``aclose_old_connections``) and 1,000 renders checks, ~1 ms a socket.
Here a publisher sends **one** ``PUBLISH`` per message on ``live_channel()`` —
``{"groups": [...], "message": {...}}`` as JSON — and each server process holds **one**
subscription per event loop, started by its first websocket and closed with its last. For
every message the process's :class:`Hub` hands the message and the list of its local members
of those groups to a ``deliver`` callback, one message at a time and in order, so the
callback can render once and write the same frames to every socket that may see them.

Groups are plain names (``portal.events.project_group``, ``ADMIN_GROUP``); a member is any
hashable object (the websocket consumer). Who may see what is the callback's business: a
group only says which sockets are interested.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

M = TypeVar("M")
Deliver = Callable[[list[tuple[dict[str, Any], list[M]]]], Awaitable[None]]


def live_channel() -> str:
    """The Redis pub/sub channel of this deployment's pushes.

    Pub/sub ignores Redis DB numbers, so the name carries the DB of ``REDIS_URL``: a test run
    on DB 15 and a ``make run`` on DB 0 of one Redis do not hear each other.
    ``NEPHELE_LIVE_CHANNEL`` overrides it."""
    configured = getattr(settings, "NEPHELE_LIVE_CHANNEL", "")
    if configured:
        return str(configured)
    db = urlparse(settings.REDIS_URL).path.strip("/") or "0"
    return f"nephele.live.{db}"


def encode(batch: Iterable[tuple[Iterable[str], dict[str, Any]]]) -> str:
    return json.dumps([[list(groups), message] for groups, message in batch], separators=(",", ":"))


def decode(data: bytes | str) -> list[tuple[list[str], dict[str, Any]]]:
    """The (groups, message) pairs of one published batch; raises ValueError if malformed."""
    try:
        batch = [(list(map(str, groups)), dict(message)) for groups, message in json.loads(data)]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a batch of [groups, message]: {exc}") from exc
    return batch


_publishers: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


async def publish_many(batch: Iterable[tuple[Iterable[str], dict[str, Any]]]) -> None:
    """Send each message to the members of its groups in every server process (one PUBLISH)."""
    loop = asyncio.get_running_loop()
    client = _publishers.get(loop)
    if client is None:
        client = _publishers[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    await client.publish(live_channel(), encode(batch))


async def publish(groups: Iterable[str], message: dict[str, Any]) -> None:
    await publish_many([(groups, message)])


class _LoopState(Generic[M]):
    """A loop's subscription and its members (Redis connections belong to one loop)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[M, None]] = {}  # group → members, in joining order
        self.joined: dict[M, tuple[str, ...]] = {}
        self.ready: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None


class Hub(Generic[M]):
    """The process's registry of local members by group, fed by one Redis subscription."""

    def __init__(self, deliver: Deliver[M]) -> None:
        self.deliver = deliver
        self._states: dict[asyncio.AbstractEventLoop, _LoopState[M]] = {}

    def _state(self) -> _LoopState[M]:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        return state

    async def join(self, member: M, groups: Iterable[str]) -> None:
        """Make ``member`` a member of exactly ``groups``; returns once the subscription is live,
        so a message published after this returns reaches it."""
        state = self._state()
        self._remove(state, member)
        names = tuple(dict.fromkeys(groups))
        state.joined[member] = names
        for name in names:
            state.groups.setdefault(name, {})[member] = None
        if state.ready is None:
            state.ready = asyncio.get_running_loop().create_future()
            try:
                await self._subscribe(state)
            except BaseException as exc:
                state.ready.set_exception(exc)
                state.ready.exception()  # retrieved here; the waiters re-raise it
                state.ready = None
                self._remove(state, member)
                raise
            state.ready.set_result(None)
            if not state.joined:  # everyone left while the subscription was being made
                self._close(state)
        else:
            await asyncio.shield(state.ready)

    def leave(self, member: M) -> None:
        """Forget ``member``; the last member of a loop closes its subscription."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            return
        self._remove(state, member)
        if not state.joined and state.task is not None:
            self._close(state)

    def _close(self, state: _LoopState[M]) -> None:
        if state.task is not None:
            state.task.cancel()  # the reader unsubscribes and closes its connection
        loop = asyncio.get_running_loop()
        if self._states.get(loop) is state:
            del self._states[loop]

    def members(self, groups: Iterable[str]) -> list[M]:
        """The local members of any of ``groups``, each once, in joining order per group."""
        state = self._states.get(asyncio.get_running_loop())
        if state is None:
            return []
        found: dict[M, None] = {}
        for name in groups:
            found.update(state.groups.get(name, {}))
        return list(found)

    def groups_of(self, member: M) -> tuple[str, ...]:
        state = self._states.get(asyncio.get_running_loop())
        return state.joined.get(member, ()) if state is not None else ()

    @staticmethod
    def _remove(state: _LoopState[M], member: M) -> None:
        for name in state.joined.pop(member, ()):
            members = state.groups.get(name)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del state.groups[name]

    async def _subscribe(self, state: _LoopState[M]) -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        pubsub = client.pubsub()
        await pubsub.subscribe(live_channel())
        # wait for Redis to confirm, so nothing published from now on is missed
        while True:
            reply = await pubsub.get_message(timeout=5)
            if reply is None:
                await client.aclose()
                raise RedisError("Redis did not confirm the subscription to the live channel")
            if reply["type"] == "subscribe":
                break
        state.task = asyncio.get_running_loop().create_task(self._read(client, pubsub))

    async def _read(self, client: aioredis.Redis, pubsub: Any) -> None:
        try:
            await self._read_forever(pubsub)
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def _read_forever(self, pubsub: Any) -> None:
        """Hand each published batch to ``deliver``, in order, together with any batches already
        waiting behind it (so a burst costs one pass over the sockets); survive Redis restarts
        and malformed messages."""
        while True:
            try:
                replies = [await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)]
                while len(replies) < 64:  # what else has already arrived, without waiting
                    more = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                    if more is None:
                        break
                    replies.append(more)
            except (RedisError, OSError) as exc:
                log.warning("live channel: %s; resubscribing in 1 s", exc)
                await asyncio.sleep(1)
                continue
            batch: list[tuple[dict[str, Any], list[M]]] = []
            for reply in replies:
                if reply is None or reply.get("type") != "message":
                    continue
                try:
                    pairs = decode(reply["data"])
                except ValueError as exc:
                    log.warning("live channel: ignoring a malformed message: %s", exc)
                    continue
                for groups, message in pairs:
                    members = self.members(groups)
                    if members:
                        batch.append((message, members))
            if not batch:
                continue
            try:
                await self.deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # one broken push must not stop the process's live updates
                log.exception("live channel: delivering %s failed", ",".join(str(m.get("type")) for m, _ in batch))


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked RFC 6455 text frame (server to client) carrying ``text``."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class RawFrames:
    """Writes already-encoded frames to one of daphne's websocket connections.

    The fan-out encodes a frame once and writes the same bytes to every socket that may see it,
    instead of handing the text to each connection's ASGI send, which re-encodes and re-frames
    it per socket. On a plain TCP connection whose send buffer is empty (the usual case) the
    bytes go straight to the socket: Twisted's buffered write would register the socket with
    the event loop and write it on the next turn, which costs more than the send itself when
    a change goes to 1,000 sockets. Anything the kernel does not take, and everything while
    Twisted or autobahn still hold unsent data, goes through them, in order."""

    __slots__ = ("protocol", "sock")

    def __init__(self, protocol: Any, sock: Any = None) -> None:
        self.protocol = protocol
        self.sock = sock  # the connection's socket when it is plain TCP, else None

    def write(self, data: bytes) -> bool:
        """Send ``data`` (whole frames) on the connection; False once it is no longer open."""
        protocol = self.protocol
        if protocol.state != protocol.STATE_OPEN:
            return False
        if protocol.send_queue:  # autobahn is pacing this connection: queue behind it
            protocol.sendData(data)
            return True
        transport = protocol.transport
        if self.sock is None or transport._tempDataBuffer or len(transport.dataBuffer) > transport.offset:
            transport.write(data)
            return True
        if not transport.connected or transport.disconnecting:
            return False
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # reset or closed: the reactor sees it on its next read
            return False
        if sent < len(data):
            transport.write(data[sent:])
        return True


RAW_FRAMES_KEY = "nephele.raw_frames"


def _daphne_protocol(send: Any) -> Any:
    """The autobahn connection behind daphne's ASGI ``send`` (``partial(server.handle_reply,
    protocol)``), or None under any other server (the fan-out then uses the ASGI send)."""
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    if getattr(send.func, "__name__", "") != "handle_reply":
        return None
    try:
        from autobahn.twisted.websocket import WebSocketServerProtocol
    except ImportError:
        return None
    protocol = send.args[0]
    return protocol if isinstance(protocol, WebSocketServerProtocol) else None


def _raw_frames(protocol: Any) -> RawFrames:
    from twisted.internet import tcp

    transport = protocol.transport
    plain = isinstance(transport, tcp.Server) and hasattr(transport, "_tempDataBuffer")
    return RawFrames(protocol, transport.socket if plain else None)


def raw_frames_middleware(app: Any) -> Any:
    """ASGI middleware: puts a :class:`RawFrames` writer in a websocket's scope when daphne serves it."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket":
            protocol = _daphne_protocol(send)
            if protocol is not None:
                scope = {**scope, RAW_FRAMES_KEY: _raw_frames(protocol)}
        return await app(scope, receive, send)

    return middleware
