#!/usr/bin/env python3
"""Monitoring store: ingest samples for 10,000 VMs and 1,000 hosts, then chart one VM over 24 h.

Prints samples/s for batched ingest (COPY on PostgreSQL; target ≥ 100,000/s on this machine)
and the latency of a 24 h chart query (per-minute roll-ups). Uses a database and a
Redis of its own (``bench/benchenv.py``; two runs at once never collide). Last line: JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

VMS, HOSTS, METRICS_PER_VM, METRICS_PER_HOST = 10_000, 1_000, 8, 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))


def main() -> None:
    benchenv.database()
    benchenv.redis()
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from monitoring import store
    from monitoring.models import Kind, Metric, Rollup

    call_command("migrate", verbosity=0)
    now = datetime.now(UTC).replace(microsecond=0)
    per_round = VMS * METRICS_PER_VM + HOSTS * METRICS_PER_HOST
    rates = []
    for r in range(ROUNDS):  # one round = one probe interval of the whole cloud
        t = now - timedelta(seconds=10 * (ROUNDS - r))
        rows = [
            (t, Kind.VM, vm, m, float((vm + m + r) % 100)) for vm in range(VMS) for m in range(1, METRICS_PER_VM + 1)
        ]
        rows += [(t, Kind.HOST, h, m, 50.0) for h in range(HOSTS) for m in range(10, 10 + METRICS_PER_HOST)]
        t0 = time.perf_counter()
        with transaction.atomic():
            store.ingest(rows)
        rates.append(per_round / (time.perf_counter() - t0))
    # 24 h of per-minute history for the charted VM, as the roll-up leaves it
    hist = [
        Rollup(resolution=60, bucket=now - timedelta(minutes=i), kind=Kind.VM, object_id=42, metric=Metric.CPU_PCT,
               avg=float(i % 100), min=0.0, max=100.0, n=6)
        for i in range(1, 24 * 60 + 1)
    ]  # fmt: skip
    Rollup.objects.bulk_create(hist, batch_size=2000)
    lat = []
    for _ in range(20):
        t0 = time.perf_counter()
        res, points = store.series(Kind.VM, 42, Metric.CPU_PCT, now - timedelta(hours=24), now)
        lat.append(1000 * (time.perf_counter() - t0))
    result = {
        "samples_per_round": per_round, "rounds": ROUNDS, "samples_per_s": round(statistics.median(rates)),
        "query_24h_ms_p50": round(statistics.median(lat), 2), "query_24h_points": len(points),
        "query_resolution_s": res, "database": connection.vendor,
    }  # fmt: skip
    print(
        f"Monitoring ingest ({connection.vendor}): {VMS} VMs x {METRICS_PER_VM} + {HOSTS} hosts x {METRICS_PER_HOST} per round"
    )
    print(f"  {result['samples_per_s']:,} samples/s (median of {ROUNDS} rounds; target ≥ 100,000/s)")
    print(f"  24 h chart of one VM: {len(points)} points at {res} s, {result['query_24h_ms_p50']} ms (p50 of 20)")
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
