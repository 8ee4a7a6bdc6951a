#!/usr/bin/env python3
"""Placement core throughput and packing quality (no Django, no database).

Scenario A: 10,000 pending VMs of mixed sizes, a quarter with label / hypervisor / cluster
requirements, onto 2,000 heterogeneous hosts: decisions per second.
Scenario B: the same VMs without constraints onto identical hosts, packing policy: hosts used
versus the lower bound max(ceil(Σvcpu / host vcpu), ceil(Σmem / host mem)).
Targets: ≥ 5,000 decisions/s; packing within 1.05× of the bound. Last line: JSON.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compute.scheduler.core import HostView, Policy, VMRequest, place_batch  # noqa: E402

SIZES = [(1, 1024), (1, 2048), (2, 4096), (2, 8192), (4, 8192), (4, 16384), (8, 32768)]


def hosts_mixed(rng: random.Random, n: int) -> list[HostView]:
    out = []
    for i in range(n):
        vcpu, mem = rng.choice([(32, 131072), (64, 262144), (64, 524288)])
        labels = {"zone": rng.choice("abc")}
        if rng.random() < 0.3:
            labels["ssd"] = "yes"
        out.append(
            HostView(
                id=i + 1,
                name=f"h{i}",
                cluster_id=i % 4,
                cluster_name=f"c{i % 4}",
                hypervisor="kvm" if i % 5 else "qemu",
                labels=labels,
                free_vcpu=vcpu,
                free_memory_mb=mem,
                free_disk_gb=2000,
                running_vms=0,
                cpu_load=rng.random(),
                priority=rng.randint(0, 9),
            )  # fmt: skip
        )
    return out


def vms(rng: random.Random, n: int, constrained: bool) -> list[VMRequest]:
    out = []
    for i in range(n):
        vcpu, mem = rng.choice(SIZES)
        kw: dict[str, object] = {}
        if constrained and rng.random() < 0.25:
            kind = rng.randrange(3)
            if kind == 0:
                kw["required_labels"] = {"ssd": "yes"}
            elif kind == 1:
                kw["hypervisor"] = "kvm"
            else:
                kw["cluster_id"] = rng.randrange(4)
        out.append(VMRequest(id=i + 1, vcpu=vcpu, memory_mb=mem, disk_gb=20, **kw))  # type: ignore[arg-type]
    return out


def main() -> None:
    rng = random.Random(42)
    hosts = hosts_mixed(rng, 2000)
    reqs = vms(rng, 10_000, constrained=True)
    t0 = time.perf_counter()
    decisions = place_batch(reqs, hosts, Policy.PACKING)
    elapsed = time.perf_counter() - t0
    placed = sum(d.host_id is not None for d in decisions)
    rate = len(decisions) / elapsed

    homo = [HostView(i + 1, f"h{i}", None, "", "kvm", {}, 64, 262144, 4000, 0) for i in range(2000)]
    plain = vms(random.Random(7), 10_000, constrained=False)
    t1 = time.perf_counter()
    packed = place_batch(plain, homo, Policy.PACKING)
    rate_b = len(packed) / (time.perf_counter() - t1)
    used = len({d.host_id for d in packed if d.host_id is not None})
    bound = max(math.ceil(sum(v.vcpu for v in plain) / 64), math.ceil(sum(v.memory_mb for v in plain) / 262144))
    striped = place_batch(plain, homo, Policy.STRIPING)
    used_striping = len({d.host_id for d in striped if d.host_id is not None})

    print("Scheduler placement core (filter → rank over numpy arrays)")
    print(
        f"  A: {len(reqs)} VMs (25% constrained) on {len(hosts)} mixed hosts: {rate:,.0f} decisions/s, placed {placed}"
    )
    print(f"  B: {len(plain)} VMs on {len(homo)} identical hosts, packing: {used} hosts used, lower bound {bound} "
          f"({used / bound:.3f}×), {rate_b:,.0f} decisions/s; striping spreads over {used_striping} hosts")  # fmt: skip
    print("  targets: ≥ 5,000 decisions/s; packing ≤ 1.05× the lower bound")
    result = {
        "decisions_per_s": round(rate), "placed": placed, "unplaced": len(decisions) - placed,
        "hosts_used": used, "hosts_lower_bound": bound, "hosts_used_vs_bound": round(used / bound, 3),
        "packing_decisions_per_s": round(rate_b),
    }  # fmt: skip
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
