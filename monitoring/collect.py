"""Turn cumulative counters into samples (rates, percentages). Runs in the agent; no ORM."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import partial

from specs import DomainStats, HostInfo

from .models import Kind, Metric

Row = tuple[datetime, int, int, int, float]
_previous: dict[tuple[str, str], tuple[float, DomainStats]] = {}
_lock = threading.Lock()


def _rate(now_v: int, then_v: int, *, dt: float) -> float:
    return max(0.0, (now_v - then_v) / dt)


def host_rows(
    host_id: int, info: HostInfo, alloc_vcpu: int, alloc_memory_mb: int, now: datetime | None = None
) -> list[Row]:
    t = now or datetime.now(UTC)
    k = Kind.HOST
    return [
        (t, k, host_id, Metric.HOST_CPU_LOAD, info.cpu_load * 100),
        (t, k, host_id, Metric.HOST_FREE_MEMORY_MB, float(info.free_memory_mb)),
        (t, k, host_id, Metric.HOST_ALLOC_VCPU, float(alloc_vcpu)),
        (t, k, host_id, Metric.HOST_ALLOC_MEMORY_MB, float(alloc_memory_mb)),
    ]


def vm_rows(
    uri: str,
    stats: list[DomainStats],
    vm_ids: dict[str, int],
    now: datetime | None = None,
    previous: dict[str, tuple[float, DomainStats]] | None = None,
) -> list[Row]:
    """Samples for the domains that are Nephele VMs; rates need a previous reading of the same
    domain: ``previous`` (name → (epoch seconds, reading), sent by the agent that took both, so
    any control-plane worker computes the same rates), else the last one this process saw."""
    t = now or datetime.now(UTC)
    ts = t.timestamp()
    rows: list[Row] = []
    with _lock:
        for s in stats:
            pk = vm_ids.get(s.name)
            if pk is None:
                continue
            prev = previous.get(s.name) if previous is not None else _previous.get((uri, s.name))
            _previous[(uri, s.name)] = (ts, s)
            rows.append((t, Kind.VM, pk, Metric.MEMORY_MB, s.memory_kb / 1024))
            if prev is None or ts <= prev[0]:
                continue
            dt, p = ts - prev[0], prev[1]
            rate = partial(_rate, dt=dt)
            cpu = 100.0 * rate(s.cpu_time_ns, p.cpu_time_ns) / 1e9 / max(1, s.vcpu)
            rows += [
                (t, Kind.VM, pk, Metric.CPU_PCT, min(100.0, cpu)),
                (t, Kind.VM, pk, Metric.NET_RX_BPS, rate(s.rx_bytes, p.rx_bytes)),
                (t, Kind.VM, pk, Metric.NET_TX_BPS, rate(s.tx_bytes, p.tx_bytes)),
                (t, Kind.VM, pk, Metric.DISK_RD_BPS, rate(s.rd_bytes, p.rd_bytes)),
                (t, Kind.VM, pk, Metric.DISK_WR_BPS, rate(s.wr_bytes, p.wr_bytes)),
                (t, Kind.VM, pk, Metric.DISK_RD_IOPS, rate(s.rd_reqs, p.rd_reqs)),
                (t, Kind.VM, pk, Metric.DISK_WR_IOPS, rate(s.wr_reqs, p.wr_reqs)),
            ]
    return rows
