#!/usr/bin/env python3
"""Nephele at cloud scale (issue 13): seeds 100,000 VMs in 200 projects (500 each) on 2,000
simulated hosts, then measures the pages, the API and the scheduler's path in one run.

Seeding uses bulk inserts through the models and then does what their services would have
done: host allocations and quota usage are recounted from the VMs, so every page shows
consistent figures. Requests run in process through Django's test client (server time, no
network): for each row the median and p95 wall time, requests per CPU-second of this process,
response bytes and SQL queries. ``BENCH_VMS``, ``BENCH_HOSTS``, ``BENCH_PROJECTS`` and
``BENCH_REPEAT`` and ``BENCH_PENDING`` (the pending VMs of the sweep row) change the size; the database and Redis are the run's own
(``bench/benchenv.py``). The last line is JSON, with the load average.

Targets (issue 13): VM list page ≤ 150 ms and ≤ 100 KB; dashboard ≤ 200 ms; API list p95 ≤
50 ms and ≥ 150 requests per CPU-second; a deep page costs what the first does; one placement
≤ 5 ms amortised (a sweep over 5,000 pending VMs ≤ 10 s).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

N_VMS = int(os.environ.get("BENCH_VMS", "100000"))
N_HOSTS = int(os.environ.get("BENCH_HOSTS", "2000"))
N_PROJECTS = int(os.environ.get("BENCH_PROJECTS", "200"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
N_PENDING = int(os.environ.get("BENCH_PENDING", "5000"))


def seed() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from compute.models import Host, VirtualMachine, VMTemplate
    from compute.states import HostState
    from compute.states import VMState as S
    from tenants import credentials
    from tenants.models import Membership, Organization, Project
    from tenants.quotas import set_limit

    User = get_user_model()
    started = time.monotonic()
    with transaction.atomic():
        admin = User.objects.create(username="admin", is_staff=True, is_superuser=True)
        orgs = Organization.objects.bulk_create([Organization(name=f"org{i}") for i in range(max(1, N_PROJECTS // 10))])
        projects = Project.objects.bulk_create(
            [Project(organization=orgs[i % len(orgs)], name=f"p{i}") for i in range(N_PROJECTS)]
        )
        users = User.objects.bulk_create([User(username=f"u{i}") for i in range(N_PROJECTS)])
        Membership.objects.bulk_create(
            [Membership(user=u, project=p, role="member") for u, p in zip(users, projects, strict=True)]
        )
        templates = VMTemplate.objects.bulk_create(
            [VMTemplate(project=p, owner=u, name="t", vcpu=1, memory_mb=512, hypervisor="test")
             for u, p in zip(users, projects, strict=True)]
        )  # fmt: skip
        hosts = Host.objects.bulk_create([
            Host(name=f"h{i:04d}", uri=f"test:///bench/h{i}.xml", hypervisor="test", state=HostState.MONITORED,
                 total_vcpu=128, total_memory_mb=1048576, total_disk_gb=10000, free_memory_mb=524288,
                 cpu_load=(i % 10) / 10)
            for i in range(N_HOSTS)
        ])  # fmt: skip
        states = [S.RUNNING] * 8 + [S.POWEROFF, S.STOPPED]
        batch: list[VirtualMachine] = []
        per_project = max(1, N_VMS // N_PROJECTS)
        for n in range(N_VMS):
            p = n // per_project % N_PROJECTS
            state = states[n % len(states)]
            batch.append(VirtualMachine(
                project=projects[p], owner=users[p], template=templates[p], name=f"vm{n}", vcpu=1, memory_mb=512,
                state=state, host=hosts[n % N_HOSTS] if state != S.STOPPED else None, hypervisor="test",
            ))  # fmt: skip
            if len(batch) == 5000:
                VirtualMachine.objects.bulk_create(batch)
                batch = []
        VirtualMachine.objects.bulk_create(batch)
        # what the services keep: host allocations from their resident VMs
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE compute_host h SET alloc_vcpu = c.v, alloc_memory_mb = c.m FROM ("
                " SELECT host_id, SUM(vcpu) v, SUM(memory_mb) m FROM compute_virtualmachine"
                " WHERE host_id IS NOT NULL GROUP BY host_id) c WHERE c.host_id = h.id"
            )
    for p in projects:
        for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
            set_limit(p, resource, -1)
    _token, admin_secret = credentials.create_token(admin, name="bench")
    _token, tenant_secret = credentials.create_token(users[0], name="bench")
    return {
        "admin": admin, "tenant": users[0], "project": projects[0], "template": templates[0],
        "admin_token": admin_secret, "tenant_token": tenant_secret, "seed_s": round(time.monotonic() - started, 1),
    }  # fmt: skip


def measure(call: Callable[[], Any], repeat: int = REPEAT) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()  # warm
    walls: list[float] = []
    cpu0 = time.process_time()
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = call()
        walls.append(time.perf_counter() - t0)
        size = len(getattr(resp, "content", b""))
    cpu = time.process_time() - cpu0
    with CaptureQueriesContext(connection) as ctx:
        call()
    walls.sort()
    return {
        "p50_ms": round(1000 * statistics.median(walls), 1),
        "p95_ms": round(1000 * walls[min(len(walls) - 1, int(0.95 * len(walls)))], 1),
        "per_cpu_s": round(repeat / cpu, 1) if cpu else None,
        "bytes": size,
        "queries": len(ctx.captured_queries),
    }


def main() -> None:
    benchenv.django_env("nephele-scale")
    os.environ.setdefault("NEPHELE_API_RATE_USER", "0")
    os.environ.setdefault("NEPHELE_API_RATE_TOKEN", "0")
    os.environ.setdefault("NEPHELE_LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from compute import services
    from compute.models import VirtualMachine

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    world = seed()
    tenant, admin = Client(), Client()
    tenant.force_login(world["tenant"])
    admin.force_login(world["admin"])

    # one client (one handler, as a server process has) per token
    api_clients = {t: Client(HTTP_AUTHORIZATION=f"Bearer {t}") for t in (world["tenant_token"], world["admin_token"])}

    def api(token: str, path: str) -> Any:
        return api_clients[token].get(path)

    rows: dict[str, dict[str, Any]] = {}
    rows["html_vm_list_tenant"] = measure(lambda: tenant.get("/compute/vms/"))
    rows["html_vm_list_admin_all"] = measure(lambda: admin.get("/compute/vms/?project=all"))
    rows["html_vm_list_admin_all_deep"] = measure(lambda: admin.get("/compute/vms/?project=all&page=1000"))
    rows["html_host_list_admin"] = measure(lambda: admin.get("/compute/hosts/"))
    rows["html_dashboard_admin"] = measure(lambda: admin.get("/"))
    rows["html_dashboard_tenant"] = measure(lambda: tenant.get("/"))
    rows["api_vms_tenant"] = measure(lambda: api(world["tenant_token"], "/api/v1/vms/?limit=50"))
    rows["api_vms_admin"] = measure(lambda: api(world["admin_token"], "/api/v1/vms/?limit=50"))
    rows["api_vms_admin_offset_50000"] = measure(
        lambda: api(world["admin_token"], f"/api/v1/vms/?limit=50&offset={N_VMS // 2}")
    )
    # a keyset page half-way down: follow ``next`` with big pages, then measure the next one
    url = "/api/v1/vms/?limit=1000&cursor="
    for _ in range(N_VMS // 2000):
        url = api(world["admin_token"], url).json()["next"] or url
    deep = url.replace("limit=1000", "limit=50")
    rows["api_vms_admin_cursor_deep"] = measure(lambda: api(world["admin_token"], deep))

    # one placement: a PENDING VM placed by the service onto 2,000 hosts
    pending: list[int] = []

    def make_and_place() -> Any:
        (vm,) = services.create_vms(
            world["tenant"], project=world["project"], template=world["template"], name="placed", hold=True
        )
        pending.append(vm.pk)
        VirtualMachine.objects.filter(pk=vm.pk).update(state="PENDING")
        t0 = time.perf_counter()
        services.place_vm(vm.pk)
        place_ms.append(1000 * (time.perf_counter() - t0))

    place_ms: list[float] = []
    rows["create_and_place_one_vm"] = measure(make_and_place, repeat=10)
    rows["create_and_place_one_vm"]["place_p50_ms"] = round(statistics.median(place_ms), 1)
    rows["api_create_vm_tenant"] = measure(
        lambda: api_clients[world["tenant_token"]].post(
            "/api/v1/vms/", {"name": "apicreate", "project": world["project"].pk, "template": world["template"].pk,
                             "hold": True},
            content_type="application/json",
        ),
        repeat=10,
    )  # fmt: skip

    # a sweep over many pending VMs: ranked in one pass over one host snapshot, then claimed
    from compute.models import VMTemplate
    from compute.tasks import schedule_pending

    template = VMTemplate.objects.get(pk=world["template"].pk)
    VirtualMachine.objects.bulk_create([
        VirtualMachine(project=world["project"], owner=world["tenant"], template=template, name=f"pend{i}",
                       vcpu=1, memory_mb=512, hypervisor="test")
        for i in range(N_PENDING)
    ])  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    swept = schedule_pending()
    wall = time.perf_counter() - t0
    rows["schedule_pending_sweep"] = {
        "p50_ms": round(1000 * wall, 1), "p95_ms": round(1000 * wall, 1),
        "per_cpu_s": round(N_PENDING / max(1e-9, time.process_time() - c0), 1), "bytes": 0, "queries": 0,
        "vms": N_PENDING, "placed": swept["placed"], "ms_per_vm": round(1000 * wall / N_PENDING, 2),
    }  # fmt: skip

    print(f"Nephele at scale: {N_VMS} VMs in {N_PROJECTS} projects on {N_HOSTS} hosts (seeded in {world['seed_s']} s)")
    print(f"  {'request / path':<34} {'p50 ms':>8} {'p95 ms':>8} {'req/CPU-s':>10} {'bytes':>9} {'queries':>8}")
    for name, r in rows.items():
        print(
            f"  {name:<34} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['per_cpu_s']!s:>10} {r['bytes']:>9} {r['queries']:>8}"
        )
    result = {"vms": N_VMS, "hosts": N_HOSTS, "projects": N_PROJECTS, "seed_s": world["seed_s"], "rows": rows,
              "load_average_1min": round(os.getloadavg()[0], 1)}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
