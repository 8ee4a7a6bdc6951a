#!/usr/bin/env python3
"""Nephele beside a real OpenStack Nova, in one run (issue 13).

The same two workloads on each cloud, one cloud at a time (the other is not running):
- single VM: create → RUNNING (Nephele) / ACTIVE (Nova), one VM after the other, median of
  ``BENCH_PEER_SINGLE`` (5);
- burst: ``BENCH_PEER_BURST`` (50) creates from 8 client threads at once; seconds from the
  first request until every one of them runs.
Both are timed the way a client sees them: wall clock from just before the create request to
the first answer (polled every 20 ms for one VM, every 100 ms for the burst) that shows the VM
running.

Nephele runs as ``bench/deploy.py`` runs it: the scheduler worker and the host agent are
separate processes, the bench process is the API server (DRF's test client, no HTTP) and its
clients; ``BENCH_PEER_HOSTS`` (2) simulated hosts; its own database and Redis
(``bench/benchenv.py``: unique names, or ``BENCH_DATABASE`` / ``BENCH_REDIS_URL``). Nova is
``tests/peers/nova.py``: nova-api and placement-api under gunicorn, conductor, scheduler and
as many fake computes as Nephele has hosts, reached over HTTP on loopback at microversion 2.96
with ``"networks": "none"``; its databases are throwaway ones with unique names. The first run
creates the Nova venv (.cache/nova-venv, ≈ 410 MB). Last line: JSON, with the load average.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

from tests.peers.nova import nova_peer  # noqa: E402

SINGLE = int(os.environ.get("BENCH_PEER_SINGLE", "5"))
BURST = int(os.environ.get("BENCH_PEER_BURST", "50"))
HOSTS = int(os.environ.get("BENCH_PEER_HOSTS", "2"))
CLIENTS = 8
TIMEOUT_S = 600.0


def burst(
    create: Callable[[int], str],
    states: Callable[[list[str]], dict[str, str]],
    running: str,
    thread_end: Callable[[], None] = lambda: None,
) -> dict:
    """``BURST`` creates from ``CLIENTS`` threads; seconds until all run (or the first failure)."""
    ids: list[str] = []
    lock = threading.Lock()
    errors: list[str] = []

    def client(k: int) -> None:
        for j in range(k, BURST, CLIENTS):
            try:
                vm = create(j)
            except Exception as exc:  # noqa: BLE001 - counted and printed: a refused create is a figure here
                errors.append(repr(exc)[:200])
                continue
            with lock:
                ids.append(vm)
        thread_end()

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = time.time() - t0
    seen: dict[str, str] = {}
    while time.time() - t0 < TIMEOUT_S:
        seen = states(ids)
        if all(s in (running, "FAILED") for s in seen.values()) and len(seen) == len(ids):
            break
        time.sleep(0.1)
    wall = time.time() - t0
    n_running = sum(s == running for s in seen.values())
    return {
        "vms": BURST, "running": n_running, "failed": len(ids) - n_running + len(errors),
        "all_running_s": round(wall, 2), "requests_done_s": round(accepted, 2), "errors": errors[:3],
    }  # fmt: skip


def single(create: Callable[[int], str], state: Callable[[str], str], running: str) -> dict:
    lat = []
    for i in range(SINGLE):
        t0 = time.time()
        vm = create(1000 + i)
        while (s := state(vm)) not in (running, "FAILED"):
            if time.time() - t0 > TIMEOUT_S:
                raise RuntimeError(f"VM {vm} not running after {TIMEOUT_S:.0f} s (state {s})")
            time.sleep(0.02)
        if s != running:
            raise RuntimeError(f"VM {vm} failed")
        lat.append(time.time() - t0)
    return {
        "n": SINGLE, "median_s": round(statistics.median(lat), 3),
        "min_s": round(min(lat), 3), "max_s": round(max(lat), 3),
    }  # fmt: skip


# ----------------------------------------------------------------------------- Nephele


def measure_nephele() -> dict:
    tmp = benchenv.django_env()
    os.environ["NEPHELE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from compute.models import Host, VirtualMachine
    from compute.states import FAILURES

    call_command("migrate", verbosity=0)
    world = benchenv.small_cloud(tmp, HOSTS, vcpu=1000, memory_mb=800 * 1024)
    user, project, template = world["user"], world["project"], world["template"]
    procs = benchenv.service_processes(dict(os.environ), ROOT, logs=tmp)
    local = threading.local()

    def api() -> APIClient:
        if not hasattr(local, "api"):
            local.api = APIClient()
            local.api.force_authenticate(user)
        return local.api

    def create(j: int) -> str:
        r = api().post(
            "/api/v1/vms/", {"name": f"vm{j}", "project": project.pk, "template": template.pk}, format="json"
        )
        if r.status_code != 202:
            raise RuntimeError(f"{r.status_code}: {r.content[:200]!r}")
        return str(r.json()[0]["id"])

    def state(vm: str) -> str:
        s = api().get(f"/api/v1/vms/{vm}/").json()["state"]
        return "FAILED" if s in FAILURES else s

    def states(ids: list[str]) -> dict[str, str]:
        rows = VirtualMachine.objects.filter(pk__in=ids).values_list("pk", "state")
        return {str(pk): "FAILED" if s in FAILURES else s for pk, s in rows}

    try:
        deadline = time.time() + 60
        while Host.objects.filter(state="MONITORED").count() < HOSTS and time.time() < deadline:
            time.sleep(0.2)
        result = {"load_average_1min_before": round(os.getloadavg()[0], 1)}
        result |= {
            "single": single(create, state, "RUNNING"),
            "burst": burst(create, states, "RUNNING", lambda: connection.close()),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    result["hosts"] = HOSTS
    result["logs"] = str(tmp)
    return result


# ----------------------------------------------------------------------------- Nova


def measure_nova() -> dict:
    started = time.time()
    with nova_peer(computes=HOSTS, log=lambda m: print(m, flush=True)) as nova:
        prepared = time.time() - started
        result = {"load_average_1min_before": round(os.getloadavg()[0], 1)}

        def create(j: int) -> str:
            body = {"server": {"name": f"vm{j}", "imageRef": nova.image_id, "flavorRef": nova.flavor_id, "networks": "none"}}  # fmt: skip
            return str(nova.request("POST", "/servers", body)["server"]["id"])

        def status(server: dict) -> str:
            return "FAILED" if server["status"] == "ERROR" else server["status"]

        def state(vm: str) -> str:
            return status(nova.request("GET", f"/servers/{vm}")["server"])

        def states(ids: list[str]) -> dict[str, str]:
            wanted = set(ids)
            servers = nova.request("GET", "/servers/detail?limit=1000")["servers"]
            return {s["id"]: status(s) for s in servers if s["id"] in wanted}

        result |= {"single": single(create, state, "ACTIVE"), "burst": burst(create, states, "ACTIVE")}
        result["computes"] = len(nova.hosts)
        result["prepare_s"] = round(prepared, 1)
        result["version"] = nova.version
    return result


def main() -> None:
    nephele = measure_nephele()
    nova = measure_nova()
    load = [round(x, 1) for x in os.getloadavg()]
    print(f"Nephele vs OpenStack Nova {nova['version']} (fake driver), {HOSTS} hosts each, same machine, one at a time")
    print(f"  {'':40} {'Nephele':>14} {'Nova':>14}")
    ns, vs, nb, vb = nephele["single"], nova["single"], nephele["burst"], nova["burst"]
    rows = [
        (f"one VM, create -> running (median of {SINGLE})", f"{ns['median_s']} s", f"{vs['median_s']} s"),
        ("    min-max", f"{ns['min_s']}-{ns['max_s']} s", f"{vs['min_s']}-{vs['max_s']} s"),
        (f"{BURST} VMs at once, until all running", f"{nb['all_running_s']} s", f"{vb['all_running_s']} s"),
        ("    running / failed", f"{nb['running']} / {nb['failed']}", f"{vb['running']} / {vb['failed']}"),
    ]
    for label, a, b in rows:
        print(f"  {label:40} {a:>14} {b:>14}")
    before = f"{nephele['load_average_1min_before']} before Nephele's, {nova['load_average_1min_before']} before Nova's"
    print(f"  load average {load[0]} / {load[1]} / {load[2]} (1 / 5 / 15 min) at the end; 1 min {before}")
    print(f"  Nova prepared in {nova['prepare_s']} s; Nephele's agent and worker logs in {nephele['logs']}")
    print(json.dumps({"nephele": nephele, "nova": nova, "load_average": load, "load_average_1min": load[0]}))


if __name__ == "__main__":
    main()
