#!/usr/bin/env python3
"""Event fan-out: one VM state change pushed to 1,000 websocket subscribers.

Runs the real ASGI application (Channels consumer, Redis channel layer) in-process with 1,000
WebsocketCommunicators of members of one project; one VM changes state through the service;
prints the time from the change (commit) to the last subscriber's message (target ≤ 100 ms).
Last line: JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1000"))


def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nephele")
    base = url.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/postgres", "-qc", "DROP DATABASE IF EXISTS nephele_bench"], check=True)
    subprocess.run(["psql", f"{base}/postgres", "-qc", "CREATE DATABASE nephele_bench"], check=True)
    os.environ["DATABASE_URL"] = f"{base}/nephele_bench"
    os.environ["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["NEPHELE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from compute import services
    from compute.models import VMTemplate
    from portal.asgi import application
    from tenants.models import Membership, Organization, Project

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create(username="watcher")
    project = Project.objects.create(organization=Organization.objects.create(name="o"), name="p")
    Membership.objects.create(user=user, project=project, role="member")
    tpl = VMTemplate.objects.create(project=project, owner=user, name="t", vcpu=1, memory_mb=256)
    session = SessionStore()
    session.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "tenants.security.ThrottledModelBackend",
                    "_auth_user_hash": user.get_session_auth_hash()})  # fmt: skip
    session.create()
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={session.session_key}".encode()),
    ]

    async def run() -> dict[str, float]:
        comms = [WebsocketCommunicator(application, "/ws/live/", headers=headers) for _ in range(SUBSCRIBERS)]
        for i in range(0, SUBSCRIBERS, 100):
            results = await asyncio.gather(*(c.connect(timeout=30) for c in comms[i : i + 100]))
            assert all(ok for ok, _ in results), "a subscriber was refused"
        t0 = time.perf_counter()
        await sync_to_async(services.create_vms)(user, project=project, template=tpl, name="x", hold=True)
        t_commit = time.perf_counter()
        arrivals = await asyncio.gather(*(first_message(c) for c in comms))
        last = max(arrivals)
        await asyncio.gather(*(c.disconnect() for c in comms))
        return {"commit_ms": 1000 * (t_commit - t0), "last_delivery_ms": 1000 * (last - t_commit),
                "median_delivery_ms": 1000 * (sorted(arrivals)[len(arrivals) // 2] - t_commit)}  # fmt: skip

    async def first_message(c: WebsocketCommunicator) -> float:
        await c.receive_from(timeout=30)
        return time.perf_counter()

    figures = async_to_sync(run)()
    result = {"subscribers": SUBSCRIBERS, **{k: round(v, 1) for k, v in figures.items()}}
    print(f"Event fan-out: one VM state change to {SUBSCRIBERS} websocket subscribers (Redis channel layer)")
    print(
        f"  last delivery {result['last_delivery_ms']} ms after commit, median {result['median_delivery_ms']} ms (target ≤ 100 ms)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
