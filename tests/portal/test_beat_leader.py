"""Exactly one periodic scheduler however many beat processes run (portal/leader.py): three
real ``celery beat`` processes on the test PostgreSQL and a private Redis broker; one holds
the advisory lock and sends, the others send nothing; when the leader is killed (SIGKILL) a
standby takes over within seconds, and there is still one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

from portal.leader import LOCK_KEY
from tests.conftest import wait_for
from tests.servers import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
WINDOW_S = 8.0
RELAY_S = 1.0  # the outbox relay's period: the periodic entry whose sends are counted


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _ping(url), timeout=20)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def beats(transactional_db: Any, broker: str, tmp_path: Path) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "NEPHELE_OUTBOX_RELAY_S": str(RELAY_S),
    }
    procs: dict[int, subprocess.Popen[bytes]] = {}
    for i in range(3):
        log = open(tmp_path / f"beat{i}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "beat", "-l", "WARNING", "-s", str(tmp_path / f"s{i}")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs[proc.pid] = proc
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _leaders() -> list[int]:
    """The pids of the beat processes holding the lock (their connection's application name)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s AND l.granted",
            [LOCK_KEY],
        )
        return [int(name.rsplit("-", 1)[1]) for (name,) in cur.fetchall()]


def _relays_sent(url: str, window_s: float) -> int:
    """How many ``portal.relay_outbox`` messages reached the broker's queue in ``window_s``."""
    r = redis.Redis.from_url(url)
    r.delete("nephele")
    time.sleep(window_s)
    return sum(json.loads(m)["headers"]["task"] == "portal.relay_outbox" for m in r.lrange("nephele", 0, -1))


def test_one_leader_sends_and_a_standby_takes_over_when_it_dies(
    beats: dict[int, subprocess.Popen[bytes]], broker: str
) -> None:
    wait_for(lambda: len(_leaders()) == 1, timeout=60)
    leader = _leaders()[0]
    assert leader in beats
    sent = _relays_sent(broker, WINDOW_S)
    # one beat sends about one per RELAY_S; three would send three times that
    assert WINDOW_S / RELAY_S / 2 <= sent <= WINDOW_S / RELAY_S + 2, sent
    assert _leaders() == [leader]

    os.killpg(leader, signal.SIGKILL)
    beats[leader].wait()
    taken_at = time.monotonic()
    wait_for(lambda: len(_leaders()) == 1 and _leaders()[0] != leader, timeout=30)
    print(f"\nbeat failover: a standby leads {time.monotonic() - taken_at:.1f} s after the leader died")
    successor = _leaders()[0]
    assert successor in beats and beats[successor].poll() is None
    sent = _relays_sent(broker, WINDOW_S)
    assert WINDOW_S / RELAY_S / 2 <= sent <= WINDOW_S / RELAY_S + 2, sent
    assert _leaders() == [successor]
