"""Live pushes: one Redis channel per group, one subscription per process, fanned out in process
(docs/monitoring.md).

A publisher sends each message to the Redis channel of each of its groups
(``group_channel(group)``: ``<live_channel()>.<group>``, e.g. ``nephele.live.0.project.7``),
all of a commit's messages in one MULTI/EXEC pipeline, one ``PUBLISH`` per group carrying
``[[id, groups, message], …]``. Each server process holds **one** Redis connection per event
loop, subscribed to exactly the groups its sockets joined: the first member of a group
subscribes its channel, the last one to leave unsubscribes it, so a web process neither
receives nor decodes the messages of tenants it serves no socket of. A message sent to two
groups the process holds arrives twice and is handed over once (by its id).

For every message the process's :class:`Hub` hands the message and the list of its local
members of the message's groups to a ``deliver`` callback, in order, so the callback can
render once for many sockets. When the subscription drops (Redis restarted, the connection
killed) the hub reconnects, subscribes again, and then hands every member a
``{"type": "refetch"}`` message: what was published during the gap is lost, and the pages
re-read what they show.

Groups are plain names (``portal.events.project_group``, ``ADMIN_GROUP``); a member is any
hashable object (the websocket consumer). Who may see what is the callback's business: a
group only says which sockets are interested.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

M = TypeVar("M")
Deliver = Callable[[list[tuple[dict[str, Any], list[M]]]], Awaitable[None]]
REFETCH: dict[str, Any] = {"type": "refetch"}  # handed to every member after a gap in the subscription
JOIN_TIMEOUT_S = 5.0  # how long a join waits for Redis to confirm its groups' subscriptions
_SEEN_MAX = 4096  # ids of the latest messages, to hand over once a message that came on two channels


def live_channel() -> str:
    """The prefix of this deployment's push channels.

    Pub/sub ignores Redis DB numbers, so the name carries the DB of ``REDIS_URL``: a test run
    on DB 15 and a ``make run`` on DB 0 of one Redis do not hear each other.
    ``NEPHELE_LIVE_CHANNEL`` overrides it."""
    configured = getattr(settings, "NEPHELE_LIVE_CHANNEL", "")
    if configured:
        return str(configured)
    db = urlparse(settings.REDIS_URL).path.strip("/") or "0"
    return f"nephele.live.{db}"


def group_channel(group: str) -> str:
    """The Redis channel of one group's pushes."""
    return f"{live_channel()}.{group}"


def hub_client_name() -> str:
    """The name of this process's hub connection in Redis ``CLIENT LIST`` (for operators, and
    for the tests that cut it)."""
    return f"{live_channel()}.hub.{os.getpid()}"


Item = tuple[str, list[str], dict[str, Any]]  # (id, groups, message)


def encode(items: Iterable[Item]) -> str:
    return json.dumps([[i, list(groups), message] for i, groups, message in items], separators=(",", ":"))


def decode(data: bytes | str) -> list[Item]:
    """The (id, groups, message) triples of one published batch; raises ValueError if malformed."""
    try:
        items = [(str(i), list(map(str, groups)), dict(message)) for i, groups, message in json.loads(data)]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a batch of [id, groups, message]: {exc}") from exc
    return items


_publishers: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


async def publish_many(batch: Iterable[tuple[Iterable[str], dict[str, Any]]]) -> None:
    """Send each message to the members of its groups in every server process: one PUBLISH per
    group on its channel, all in one MULTI/EXEC (so a message's copies arrive together)."""
    by_group: dict[str, list[Item]] = {}
    for groups, message in batch:
        names = list(dict.fromkeys(groups))
        item = (secrets.token_hex(8), names, message)
        for name in names:
            by_group.setdefault(name, []).append(item)
    if not by_group:
        return
    loop = asyncio.get_running_loop()
    client = _publishers.get(loop)
    if client is None:
        client = _publishers[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    async with client.pipeline(transaction=True) as pipe:
        for name, items in by_group.items():
            pipe.publish(group_channel(name), encode(items))
        await pipe.execute()


async def publish(groups: Iterable[str], message: dict[str, Any]) -> None:
    await publish_many([(groups, message)])


class _LoopState(Generic[M]):
    """A loop's members and its subscription (Redis connections belong to one loop).

    ``sent``/``acked`` count the SUBSCRIBE commands sent for a channel on the current connection
    and Redis's confirmations of them: a channel is live once every one was confirmed (an old
    confirmation does not vouch for a SUBSCRIBE sent after an UNSUBSCRIBE)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[M, None]] = {}  # group → members, in joining order
        self.joined: dict[M, tuple[str, ...]] = {}
        self.task: asyncio.Task[None] | None = None  # the reader, while any group is wanted
        self.pubsub: Any = None  # the reader's connection, while it is up
        self.lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE sequence at a time
        self.subscribed: set[str] = set()  # channels subscribed on the current connection
        self.sent: dict[str, int] = {}
        self.acked: dict[str, int] = {}
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.gap = False  # a refetch is owed once every channel is confirmed again
        self.seen: OrderedDict[str, None] = OrderedDict()

    def live(self, channel: str) -> bool:
        return channel in self.subscribed and self.acked.get(channel, 0) >= self.sent.get(channel, 0)


class Hub(Generic[M]):
    """The process's registry of local members by group, fed by its subscription to their channels."""

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
        """Make ``member`` a member of exactly ``groups``; returns once Redis confirmed the
        subscription of each, so a message published after this returns reaches it. Raises
        RedisError (and forgets the member) when Redis does not confirm in JOIN_TIMEOUT_S."""
        state = self._state()
        self._remove(state, member)
        names = tuple(dict.fromkeys(groups))
        state.joined[member] = names
        for name in names:
            state.groups.setdefault(name, {})[member] = None
        if not names:
            return
        if state.task is None:
            state.task = asyncio.get_running_loop().create_task(self._run(state))
        else:
            await self._sync(state)
        waiting = []
        for name in names:
            channel = group_channel(name)
            if not state.live(channel):
                future = asyncio.get_running_loop().create_future()
                state.waiters.setdefault(channel, []).append(future)
                waiting.append(future)
        if not waiting:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), JOIN_TIMEOUT_S)
        except TimeoutError:
            self.leave(member)
            raise RedisError("Redis did not confirm the subscription to the live channels") from None

    def leave(self, member: M) -> None:
        """Forget ``member``; the last member of a group unsubscribes its channel."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None or member not in state.joined:
            return
        if not self._remove(state, member):
            return
        if not state.groups:  # nothing wanted any more: the reader closes its connection
            if state.task is not None:
                state.task.cancel()
                state.task = None  # a join from now on starts a reader of its own
            if not state.joined:
                del self._states[loop]
            return
        if state.pubsub is not None:
            task = loop.create_task(self._sync(state))
            task.add_done_callback(_retrieved)

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
    def _remove(state: _LoopState[M], member: M) -> bool:
        """Forget ``member``'s groups; whether a group lost its last member."""
        emptied = False
        for name in state.joined.pop(member, ()):
            members = state.groups.get(name)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del state.groups[name]
                    emptied = True
        return emptied

    async def _sync(self, state: _LoopState[M]) -> None:
        """Subscribe the channels of the groups wanted and unsubscribe the others, on the
        current connection (the reader does it on each new connection)."""
        async with state.lock:
            pubsub = state.pubsub
            if pubsub is None:
                return  # (re)connecting: the reader subscribes what is wanted then
            wanted = {group_channel(name) for name in state.groups}
            gone, new = state.subscribed - wanted, sorted(wanted - state.subscribed)
            try:
                if gone:
                    state.subscribed -= gone
                    await pubsub.unsubscribe(*sorted(gone))
                if new:
                    state.subscribed.update(new)
                    for channel in new:
                        state.sent[channel] = state.sent.get(channel, 0) + 1
                    await pubsub.subscribe(*new)
            except (RedisError, OSError) as exc:  # the reader sees the broken connection too
                log.debug("live channels: subscribing failed: %s", exc)

    async def _run(self, state: _LoopState[M]) -> None:
        """Hold the connection: subscribe what is wanted, read, and after a drop reconnect,
        subscribe again and owe every member a refetch."""
        delay = 0.2
        try:
            while state.groups:
                # no silent retries in redis-py: a drop must surface here, so the gap is known
                client = aioredis.Redis.from_url(
                    settings.REDIS_URL, retry=Retry(NoBackoff(), 0), client_name=hub_client_name()
                )
                pubsub = client.pubsub()
                try:
                    async with state.lock:
                        state.pubsub = pubsub
                        state.subscribed.clear()
                        state.sent.clear()
                        state.acked.clear()
                    await self._sync(state)
                    if not state.subscribed:
                        return
                    await self._read_forever(state, pubsub)
                except (RedisError, OSError) as exc:
                    log.warning("live channels: %s; subscribing again in %.1f s", exc, delay)
                    state.gap = True
                finally:
                    if state.pubsub is pubsub:
                        state.pubsub = None
                    await _close_quietly(client, pubsub)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
        finally:
            if state.task is asyncio.current_task():  # (not when a new reader took over)
                state.task = None
                for futures in state.waiters.values():
                    for future in futures:
                        if not future.done():
                            future.cancel()
                state.waiters.clear()

    async def _read_forever(self, state: _LoopState[M], pubsub: Any) -> None:
        """Hand each published batch to ``deliver``, in order, together with any batches already
        waiting behind it (so a burst costs one pass over the sockets); confirm subscriptions
        to their joiners; skip malformed messages."""
        while True:
            replies = [await pubsub.get_message(timeout=None)]
            while len(replies) < 64:  # what else has already arrived, without waiting
                more = await pubsub.get_message(timeout=0)
                if more is None:
                    break
                replies.append(more)
            batch: list[tuple[dict[str, Any], list[M]]] = []
            for reply in replies:
                kind = reply.get("type") if reply is not None else None
                if kind == "subscribe":
                    self._confirmed(state, _text(reply["channel"]), batch)
                elif kind == "message":
                    self._received(state, reply["data"], batch)
            if not batch:
                continue
            try:
                await self.deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # one broken push must not stop the process's live updates
                log.exception("live channels: delivering %s failed", ",".join(str(m.get("type")) for m, _ in batch))

    def _confirmed(self, state: _LoopState[M], channel: str, batch: list[tuple[dict[str, Any], list[M]]]) -> None:
        state.acked[channel] = state.acked.get(channel, 0) + 1
        if not state.live(channel):
            return
        for future in state.waiters.pop(channel, ()):
            if not future.done():
                future.set_result(None)
        if state.gap and all(state.live(group_channel(name)) for name in state.groups):
            state.gap = False
            log.info("live channels: subscribed again; %d sockets re-read their pages", len(state.joined))
            batch.append((dict(REFETCH), list(state.joined)))

    def _received(self, state: _LoopState[M], data: bytes | str, batch: list[tuple[dict[str, Any], list[M]]]) -> None:
        try:
            items = decode(data)
        except ValueError as exc:
            log.warning("live channels: ignoring a malformed message: %s", exc)
            return
        for ident, groups, message in items:
            if ident in state.seen:  # the copy of a message sent to two of this process's groups
                continue
            state.seen[ident] = None
            if len(state.seen) > _SEEN_MAX:
                state.seen.popitem(last=False)
            members = self.members(groups)
            if members:
                batch.append((message, members))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("live channels: %s", task.exception())


async def _close_quietly(client: aioredis.Redis, pubsub: Any) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except (RedisError, OSError) as exc:
        log.debug("live channels: closing the connection: %s", exc)
