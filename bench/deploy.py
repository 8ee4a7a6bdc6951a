#!/usr/bin/env python3
"""Deploy latency: 200 VMs created through the REST API onto simulated hosts.

Prints request → RUNNING p50 / p95 / p99 (target p95 ≤ 1 s) and, as the last line, a JSON
object. Runs the production shape: the scheduler worker and the host agent are separate
processes (as `make run` starts them); the bench process plays the API server and its
clients. Uses a database and a Redis of its own (``bench/benchenv.py``: unique names, so two
runs at once never collide; ``BENCH_DATABASE`` / ``BENCH_REDIS_URL`` choose them).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

N_VMS = int(os.environ.get("BENCH_VMS", "200"))
# Requests per second offered by the clients; 0 = as fast as they can (a burst).
RATE = float(os.environ.get("BENCH_RATE", "0"))
N_HOSTS = 8
CLIENTS = 8


def main() -> None:
    tmp = benchenv.django_env()
    os.environ["NEPHELE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from compute.models import Host, VirtualMachine, VMStateChange

    call_command("migrate", verbosity=0)
    world = benchenv.small_cloud(tmp, N_HOSTS, vcpu=64, memory_mb=262144)
    user, project, template = world["user"], world["project"], world["template"]
    procs = benchenv.service_processes(dict(os.environ), ROOT)
    try:
        deadline = time.time() + 60
        while Host.objects.filter(state="MONITORED").count() < N_HOSTS and time.time() < deadline:
            time.sleep(0.2)
        started: dict[int, float] = {}
        lock = threading.Lock()

        def client(k: int) -> None:
            api = APIClient()
            api.force_authenticate(user)
            for j in range(k, N_VMS, CLIENTS):
                if RATE:
                    time.sleep(max(0.0, t_all + j / RATE - time.time()))
                t0 = time.time()
                r = api.post(
                    "/api/v1/vms/", {"name": f"vm{j}", "project": project.pk, "template": template.pk}, format="json"
                )
                assert r.status_code == 202, r.content
                with lock:
                    started[r.json()[0]["id"]] = t0
            connection.close()

        t_all = time.time()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.time() + 120
        while VirtualMachine.objects.filter(state="RUNNING").count() < N_VMS and time.time() < deadline:
            time.sleep(0.2)
        wall = time.time() - t_all
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    running_at = dict(VMStateChange.objects.filter(to_state="RUNNING").values_list("vm_id", "created_at"))
    lat = sorted(running_at[pk].timestamp() - t0 for pk, t0 in started.items() if pk in running_at)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else float("nan")

    result = {
        "vms": N_VMS, "running": len(lat), "hosts": N_HOSTS, "clients": CLIENTS,
        "p50_s": pct(0.50), "p95_s": pct(0.95), "p99_s": pct(0.99),
        "offered_rate_per_s": RATE or "burst", "mean_s": round(statistics.mean(lat), 3) if lat else None, "wall_s": round(wall, 2),
        "database": connection.vendor,
    }  # fmt: skip
    offered = f"{RATE:g} requests/s" if RATE else f"a burst from {CLIENTS} clients"
    print(f"Deploy latency, request -> RUNNING: {N_VMS} VMs via the API onto {N_HOSTS} simulated hosts, {offered}")
    print(
        f"  running: {len(lat)}/{N_VMS}   p50 {result['p50_s']} s   p95 {result['p95_s']} s   p99 {result['p99_s']} s   (target p95 ≤ 1 s)"
    )
    print(f"  wall time for all: {result['wall_s']} s")
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
