"""The process's live hub (portal.fanout): one Redis connection subscribed to the channels of
the groups its members joined, messages handed over once with exactly the local members of
their groups, in order; a refetch for everyone after the subscription was cut. Runs against
the real Redis of the test settings."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from django.conf import settings

from portal import fanout


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


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _channels() -> set[str]:
    """The live channels this deployment's processes are subscribed to (PUBSUB CHANNELS)."""
    return {c.decode() for c in _redis().pubsub_channels(f"{fanout.live_channel()}.*")}


def _subscribers(group: str) -> int:
    channel = fanout.group_channel(group)
    return int(dict(_redis().pubsub_numsub(channel))[channel.encode()])


async def _eventually(predicate: Any, timeout: float = 10) -> None:
    async def until() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(until(), timeout)


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


def test_channels_are_subscribed_per_group_and_closed_with_their_last_member() -> None:
    """The first member of a group subscribes its channel, the last one to leave unsubscribes
    it: a process with sockets of project 1 only is not subscribed to project 2's channel."""

    async def scenario() -> list[set[str]]:
        hub: fanout.Hub[int] = fanout.Hub(_Collector())
        await asyncio.gather(*(hub.join(i, ["project.1"]) for i in range(50)))
        seen = [_channels()]
        await hub.join(50, ["project.2"])
        seen.append(_channels())
        hub.leave(50)
        await _eventually(lambda: fanout.group_channel("project.2") not in _channels())
        seen.append(_channels())
        for i in range(50):
            hub.leave(i)
        await _eventually(lambda: not _channels())
        return seen

    one, two = fanout.group_channel("project.1"), fanout.group_channel("project.2")
    assert asyncio.run(scenario()) == [{one}, {one, two}, {one}]


def test_one_connection_per_process_whatever_the_groups() -> None:
    async def scenario() -> list[int]:
        hub: fanout.Hub[int] = fanout.Hub(_Collector())
        await asyncio.gather(*(hub.join(i, [f"project.{i % 3}", "cloud.admin"]) for i in range(30)))
        counts = [_subscribers(g) for g in ("project.0", "project.1", "project.2", "cloud.admin")]
        for i in range(30):
            hub.leave(i)
        return counts

    assert asyncio.run(scenario()) == [1, 1, 1, 1]


def test_a_message_to_two_groups_of_one_member_is_handed_over_once() -> None:
    async def scenario() -> list[Any]:
        seen = _Collector()
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("admin", ["cloud.admin"])
        await hub.join("alice", ["project.1"])
        await fanout.publish(["project.1", "cloud.admin"], {"type": "both"})
        await fanout.publish(["project.1"], {"type": "after"})
        await seen.wait_for(2)
        await asyncio.sleep(0.2)  # a duplicate would come right behind
        hub.leave("admin")
        hub.leave("alice")
        return seen.got

    assert asyncio.run(scenario()) == [({"type": "both"}, ["alice", "admin"]), ({"type": "after"}, ["alice"])]


def test_after_the_subscription_is_cut_everyone_is_told_to_refetch_and_pushes_resume() -> None:
    """CLIENT KILL on the hub's connection: the hub subscribes again, hands every member a
    refetch (what was published meanwhile is lost), then the pushes that follow."""

    async def scenario() -> list[Any]:
        seen = _Collector()
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        await hub.join("root", ["cloud.admin"])
        r = _redis()
        (hub_conn,) = [c for c in r.client_list() if c.get("name") == fanout.hub_client_name()]
        assert r.client_kill_filter(_id=hub_conn["id"]) == 1
        await seen.wait_for(1)
        await fanout.publish(["project.1"], {"type": "later"})
        await seen.wait_for(2)
        hub.leave("alice")
        hub.leave("root")
        return seen.got

    got = asyncio.run(scenario())
    assert got == [({"type": "refetch"}, ["alice", "root"]), ({"type": "later"}, ["alice"])]


def test_other_tenants_messages_do_not_reach_the_process() -> None:
    """A process whose members are all of project 1 hears nothing of project 2 (its channel is
    not subscribed); the deliver callback is never called for it."""

    async def scenario() -> list[Any]:
        seen = _Collector()
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        received_before = _subscribers("project.2")
        await fanout.publish(["project.2"], {"type": "theirs"})
        await fanout.publish(["project.1"], {"type": "ours"})
        await seen.wait_for(1)
        hub.leave("alice")
        assert received_before == 0
        return [seen.calls, seen.got]

    assert asyncio.run(scenario()) == [1, [({"type": "ours"}, ["alice"])]]


def test_malformed_messages_and_a_failing_delivery_do_not_stop_the_hub() -> None:
    async def scenario() -> list[Any]:
        seen = _Collector(fail_first=True)
        hub: fanout.Hub[str] = fanout.Hub(seen)
        await hub.join("alice", ["project.1"])
        raw = _redis()
        raw.publish(fanout.group_channel("project.1"), b"not json")
        raw.publish(fanout.group_channel("project.1"), b'{"groups": 1}')
        await fanout.publish(["project.1"], {"type": "first"})  # deliver raises on this one
        await asyncio.sleep(0.2)
        await fanout.publish(["project.1"], {"type": "second"})
        await seen.wait_for(1)
        hub.leave("alice")
        return seen.got

    assert asyncio.run(scenario()) == [({"type": "second"}, ["alice"])]
