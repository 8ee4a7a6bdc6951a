#!/usr/bin/env python3
"""Reliability figures (issue 11): runs the fault tier (``tests/faults``) and prints, for each
fault, the seconds from recovery to a clean state (target ≤ 60 s), VMs left stuck (0),
duplicates (0) and 500s outside the outage window (0); and the load test's figures.

Every cloud the tier starts has its own PostgreSQL, Redis (and RabbitMQ) on free ports in a
folder of its own, so two runs never collide. The pytest session itself needs a PostgreSQL URL
for its settings: ``DATABASE_URL`` / ``REDIS_URL`` when set, else throwaway servers from
``scripts/test-services.py``. ``BENCH_FAULTS_K`` narrows the run (a pytest ``-k`` expression,
e.g. ``redis`` or ``load``). The last line is JSON, with the load average.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULT = re.compile(
    r"^fault (?P<what>.+?): clean (?P<clean>[\d.]+) s after recovery; stuck (?P<stuck>\d+), "
    r"duplicates (?P<dup>\d+), 500s (?P<errors>\d+);"
)
LOAD = re.compile(
    r"^load: (?P<vms>\d+) VMs created in (?P<create>[\d.]+) s, (?P<requests>\d+) requests in [\d.]+ s "
    r"\((?P<rate>[\d.]+)/s\), p95 (?P<p95>\d+) ms"
)
TARGET_CLEAN_S = 60.0


def main() -> None:
    argv = [sys.executable, "-m", "pytest", "tests/faults", "-s", "-q", "-p", "no:cacheprovider"]
    if os.environ.get("BENCH_FAULTS_K"):
        argv += ["-k", os.environ["BENCH_FAULTS_K"]]
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        argv = [sys.executable, str(ROOT / "scripts" / "test-services.py"), "--", *argv]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    faults, load = [], None
    for line in done.stdout.splitlines():
        if m := FAULT.match(line):
            faults.append({
                "fault": m["what"], "clean_after_recovery_s": float(m["clean"]), "stuck": int(m["stuck"]),
                "duplicates": int(m["dup"]), "errors_500": int(m["errors"]),
            })  # fmt: skip
        elif m := LOAD.match(line):
            load = {"vms": int(m["vms"]), "create_s": float(m["create"]), "requests": int(m["requests"]),
                    "requests_per_s": float(m["rate"]), "p95_ms": int(m["p95"])}  # fmt: skip
    print("Faults: seconds from recovery to a clean state (target ≤ 60 s), stuck VMs, duplicates, 500s")
    for f in faults:
        mark = (
            "ok"
            if f["clean_after_recovery_s"] <= TARGET_CLEAN_S and not (f["stuck"] or f["duplicates"] or f["errors_500"])
            else "MISSED"
        )
        print(f"  {f['fault']:<62} {f['clean_after_recovery_s']:6.1f} s  stuck {f['stuck']}  dup {f['duplicates']}  500s {f['errors_500']}  {mark}")  # fmt: skip
    if load:
        print(f"Load: {load['vms']} VMs in {load['create_s']} s; {load['requests']} requests at {load['requests_per_s']}/s, p95 {load['p95_ms']} ms")  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    print(f"  pytest: {summary}")
    result = {
        "faults": faults,
        "load": load,
        "worst_clean_s": max((f["clean_after_recovery_s"] for f in faults), default=None),
        "stuck": sum(f["stuck"] for f in faults),
        "duplicates": sum(f["duplicates"] for f in faults),
        "errors_500": sum(f["errors_500"] for f in faults),
        "tests_passed": done.returncode == 0,
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
