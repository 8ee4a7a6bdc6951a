"""A control plane that scales out and restarts without loss (issue 11): two web processes
behind a round-robin client (as a load balancer), two scheduler workers, two beat processes
and one agent per hypervisor, on RabbitMQ (the production broker). During a burst of creates
each process is restarted in turn (SIGTERM, wait, start, wait until it serves — a rolling
restart): every request is answered 202 at the first try, exactly one beat leads throughout,
and the cloud is clean (no transient VM, no drift, no duplicate, all audited) within bounds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .harness import Cloud, burst, settle

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def scaled() -> Iterator[Cloud]:
    c = Cloud(hosts=2, broker="rabbitmq", webs=2, workers=2, beats=2, agent_per_host=True, qemu=True)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_several_of_each_process_serve_together_with_one_beat_leader(scaled: Cloud) -> None:
    assert len(scaled.procs) == 9, sorted(scaled.procs)  # 2 web, 2 workers, 2 beats, 3 agents
    scaled.wait(lambda: scaled.beat_leaders() == 1, 60, "one beat leader")
    answers, join = burst(scaled, "scaled", 16, clients=4, spread_s=4, retry=False)
    join()
    assert {status for _n, status, _b in answers} == {202}, answers
    settle(scaled, answers, time.monotonic(), "scale-out: 2 web, 2 workers, 2 beats, 3 agents")
    assert scaled.beat_leaders() == 1


def test_a_rolling_restart_of_every_process_during_a_burst_loses_nothing(scaled: Cloud) -> None:
    order = [scaled.instance(kind, i) for kind in ("web", "worker", "beat", "agent") for i in range(2)]
    answers, join = burst(scaled, "rolling", 40, clients=4, spread_s=60, retry=False)
    leaders = []
    for name in order:
        scaled.restart(name)
        leaders.append(scaled.beat_leaders())
    restarted = time.monotonic()
    join()
    failed = [a for a in answers if a[1] != 202]
    assert failed == [], failed
    assert len(answers) == 40
    assert set(leaders) == {1}, leaders  # never two, and a leader again after each beat restart
    settle(scaled, answers, restarted, "rolling restart of web, worker, beat and agent")
