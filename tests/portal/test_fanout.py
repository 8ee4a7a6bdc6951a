"""The process's live hub (portal.fanout): one Redis subscription, messages handed over with
exactly the local members of their groups, in order; frames encoded once for many sockets.
Runs against the real Redis of the test settings."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
import redis
from django.conf import settings

from portal import fanout


def _parse_frame(data: bytes) -> tuple[int, bytes, bytes]:
    """(opcode, payload, rest) of one server frame, as a client reads it (RFC 6455 §5.2)."""
    fin_opcode, size = data[0], data[1]
    assert fin_opcode & 0x80 and not size & 0x80  # final, not masked (server to client)
    start = 2
    if size & 0x7F == 126:
        size, start = struct.unpack_from("!H", data, 2)[0], 4
    elif size & 0x7F == 127:
        size, start = struct.unpack_from("!Q", data, 2)[0], 10
    return fin_opcode & 0x0F, data[start : start + size], data[start + size :]


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 65535, 65536, 200_000])
def test_text_frame_is_one_final_text_frame_a_client_can_read(size: int) -> None:
    text = ("é" * size)[: max(0, size // 2)] + "x" * (size - max(0, size // 2))
    opcode, payload, rest = _parse_frame(fanout.text_frame(text))
    assert (opcode, payload.decode(), rest) == (1, text, b"")


def test_two_frames_written_together_stay_two_messages() -> None:
    opcode1, first, rest = _parse_frame(fanout.text_frame("<tr>a</tr>") + fanout.text_frame("<div>b</div>"))
    opcode2, second, rest = _parse_frame(rest)
    assert (first, second, rest) == (b"<tr>a</tr>", b"<div>b</div>", b"")


def test_live_channel_is_named_after_the_redis_db() -> None:
    db = settings.REDIS_URL.rsplit("/", 1)[1]
    assert fanout.live_channel() == f"nephele.live.{db}"


def test_live_channel_can_be_named_by_the_operator(settings: Any) -> None:
    settings.NEPHELE_LIVE_CHANNEL = "cloud-b.live"
    assert fanout.live_channel() == "cloud-b.live"


class _Collector:
    """A deliver callback that records what it was handed."""

    def __init__(self, fail_first: bool = False) -> None:
        self.got: list[tuple[dict[str, Any], list[str]]] = []
        self.fail_first = fail_first
        self.calls = 0
        self.event = asyncio.Event()

    async def __call__(self, batch: list[tuple[dict[str, Any], list[str]]]) -> None:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise RuntimeError("a broken push")
        self.got.extend(batch)
        self.event.set()

    async def wait_for(self, count: int) -> None:
        async def until() -> None:
            while len(self.got) < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), 10)


def _subscribers() -> int:
    channel = fanout.live_channel()
    return int(dict(redis.Redis.from_url(settings.REDIS_URL).pubsub_numsub(channel))[channel.encode()])


def test_members_of_the_message_groups_get_it_and_no_one_else() -> None:
    async def scenario() -> list[tuple[dict[str, Any], list[str]]]:
        seen = _Collector()
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        await hub.join("bob", ["project.2"])
        await hub.join("carol", ["project.1", "project.2"])
        await hub.join("root", ["cloud.admin"])
        await fanout.publish(["project.1", "cloud.admin"], {"type": "vm.changed", "vm": 7})
        await fanout.publish(["project.3"], {"type": "vm.changed", "vm": 8})  # no member here
        await fanout.publish_many([(["project.2"], {"type": "a"}), (["project.1", "project.2"], {"type": "b"})])
        await seen.wait_for(3)
        for member in ("alice", "bob", "carol", "root"):
            hub.leave(member)
        return seen.got

    got = asyncio.run(scenario())
    assert got == [
        ({"type": "vm.changed", "vm": 7}, ["alice", "carol", "root"]),
        ({"type": "a"}, ["bob", "carol"]),
        ({"type": "b"}, ["alice", "carol", "bob"]),
    ]


def test_joining_again_replaces_the_groups() -> None:
    async def scenario() -> tuple[list[Any], tuple[str, ...]]:
        seen = _Collector()
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        await hub.join("alice", ["project.2"])  # e.g. her role moved to another project
        await fanout.publish(["project.1"], {"type": "old"})
        await fanout.publish(["project.2"], {"type": "new"})
        await seen.wait_for(1)
        groups = hub.groups_of("alice")
        hub.leave("alice")
        return seen.got, groups

    got, groups = asyncio.run(scenario())
    assert got == [({"type": "new"}, ["alice"])]
    assert groups == ("project.2",)


def test_one_subscription_per_process_closed_with_the_last_member() -> None:
    async def scenario() -> tuple[int, int]:
        hub: fanout.Hub[int] = fanout.Hub(_Collector())
        await asyncio.gather(*(hub.join(i, [f"project.{i % 3}"]) for i in range(50)))
        during = _subscribers()
        for i in range(50):
            hub.leave(i)
        await asyncio.sleep(0.2)  # the unsubscribe reaches Redis
        return during, _subscribers()

    during, after = asyncio.run(scenario())
    assert (during, after) == (1, 0)


def test_malformed_messages_and_a_failing_delivery_do_not_stop_the_hub() -> None:
    async def scenario() -> list[Any]:
        seen = _Collector(fail_first=True)
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        raw = redis.Redis.from_url(settings.REDIS_URL)
        raw.publish(fanout.live_channel(), b"not json")
        raw.publish(fanout.live_channel(), b'{"groups": 1}')
        await fanout.publish(["project.1"], {"type": "first"})  # deliver raises on this one
        await asyncio.sleep(0.2)
        await fanout.publish(["project.1"], {"type": "second"})
        await seen.wait_for(1)
        hub.leave("alice")
        return seen.got

    assert asyncio.run(scenario()) == [({"type": "second"}, ["alice"])]
