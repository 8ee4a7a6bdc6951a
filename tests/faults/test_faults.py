"""The fault tier: a burst of VM creates through the real web process while one part of the cloud
fails — the agent or the scheduler worker killed with SIGKILL, the broker (Redis, then RabbitMQ)
or PostgreSQL stopped for 20 s — and then, within a bounded time: no VM in a transient state, no operation in
flight, quota usage and host allocations equal a recount, no duplicate for any idempotency key,
every accepted create audited, the outbox drained, and no 500 at any time (during a database
outage the API answers 503 with Retry-After; during a broker outage it answers 202).

Each test prints its figure (seconds from recovery to a clean state); bench/faults.py collects them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from .harness import Cloud, burst, settle

pytestmark = [pytest.mark.integration, pytest.mark.faults]
OUTAGE_S = 20


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    """The whole tier runs on each broker: Redis (the embedded default) and RabbitMQ (production)."""
    c = Cloud(hosts=2, broker=request.param, qemu=True)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _fault(cloud: Cloud, prefix: str, what: str, hurt: Callable[[], None], heal: Callable[[], None],
           *, outage_s: float = 3, spread_s: float = 6.0, accepted: set[int] | None = None) -> None:  # fmt: skip
    """A burst of creates; ``hurt`` two seconds in, ``heal`` ``outage_s`` later; then clean."""
    answers, join = burst(cloud, prefix, 12, spread_s=spread_s)
    time.sleep(2)
    hurt()
    time.sleep(outage_s)
    heal()
    recovered = time.monotonic()
    join()
    assert {status for _n, status, _b in answers} <= (accepted or {202}), answers
    settle(cloud, answers, recovered, f"{cloud.broker}: {what}")


def test_the_agent_killed_during_a_burst(cloud: Cloud) -> None:
    _fault(cloud, "agentkill", "agent SIGKILL", lambda: cloud.kill("agent"), lambda: cloud.start_process("agent"))


def test_the_scheduler_worker_killed_during_a_burst(cloud: Cloud) -> None:
    _fault(cloud, "workerkill", "scheduler worker SIGKILL", lambda: cloud.kill("worker"),
           lambda: cloud.start_process("worker"))  # fmt: skip


def test_the_broker_stopped_for_20_s_during_a_burst(cloud: Cloud) -> None:
    # the broker being away never costs a create: committed, 202, dispatched from the outbox later
    _fault(cloud, "brokerdown", "broker down 20 s", cloud.stop_broker, cloud.start_broker,
           outage_s=OUTAGE_S, spread_s=OUTAGE_S)  # fmt: skip


def test_postgresql_stopped_for_20_s_during_a_burst(cloud: Cloud) -> None:
    # while the database is away the API answers 503 (or the client sees no answer), never 500
    _fault(cloud, "pgdown", "PostgreSQL down 20 s", cloud.stop_postgres, cloud.start_postgres, outage_s=OUTAGE_S,
           spread_s=OUTAGE_S, accepted={202, 503, 0})  # fmt: skip
