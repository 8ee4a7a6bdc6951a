"""The placement core: filter then rank, over numpy arrays. No Django, no ORM.

Hosts are snapshotted into a ``HostTable`` (one array per attribute); a request is filtered
with vectorised comparisons (labels as bits of a uint64 mask) and the candidates ranked by the
cluster's policy. The ORM side (``service.py``) then claims capacity in the database in the
ranked order, so this core can be benchmarked alone (``bench/scheduler.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class HostView:
    """A snapshot of one host, built by the ORM side."""

    id: int
    name: str
    cluster_id: int | None
    cluster_name: str
    hypervisor: str
    labels: Mapping[str, str]
    free_vcpu: int
    free_memory_mb: int
    free_disk_gb: int
    running_vms: int
    cpu_load: float = 0.0
    priority: int = 0


@dataclass(frozen=True)
class VMRequest:
    """What a VM needs and where it may go."""

    id: int
    vcpu: int
    memory_mb: int
    disk_gb: int
    required_labels: Mapping[str, str] = field(default_factory=dict)
    hypervisor: str | None = None
    cluster_id: int | None = None
    cluster_name: str = ""


class Policy(StrEnum):
    PACKING = "packing"
    STRIPING = "striping"
    LOAD_AWARE = "load_aware"
    FIXED = "fixed"


@dataclass(frozen=True)
class Decision:
    vm_id: int
    host_id: int | None
    reason: str


class HostTable:
    """Hosts as arrays; free capacity is mutable so a batch can claim as it goes."""

    def __init__(self, hosts: Sequence[HostView]) -> None:
        self.hosts = list(hosts)
        n = len(self.hosts)
        self.ids = np.array([h.id for h in self.hosts], dtype=np.int64)
        self.vcpu = np.array([h.free_vcpu for h in self.hosts], dtype=np.int64)
        self.mem = np.array([h.free_memory_mb for h in self.hosts], dtype=np.int64)
        self.disk = np.array([h.free_disk_gb for h in self.hosts], dtype=np.int64)
        self.running = np.array([h.running_vms for h in self.hosts], dtype=np.int64)
        self.load = np.array([h.cpu_load for h in self.hosts], dtype=np.float64)
        self.priority = np.array([h.priority for h in self.hosts], dtype=np.int64)
        # capacity scale for normalised ranking (largest host = 1.0)
        self.vcpu_scale = float(max(int(self.vcpu.max()) if n else 1, 1))
        self.mem_scale = float(max(int(self.mem.max()) if n else 1, 1))
        self._hyp_codes: dict[str, int] = {}
        self.hyp = np.array([self._code(self._hyp_codes, h.hypervisor) for h in self.hosts], dtype=np.int64)
        self.cluster = np.array([-1 if h.cluster_id is None else h.cluster_id for h in self.hosts], dtype=np.int64)
        self._bits: dict[tuple[str, str], int] = {}
        pairs = sorted({(k, v) for h in self.hosts for k, v in h.labels.items()})
        self._use_bits = len(pairs) <= 64
        if self._use_bits:
            self._bits = {p: i for i, p in enumerate(pairs)}
            masks = [sum(1 << self._bits[(k, v)] for k, v in h.labels.items()) for h in self.hosts]
            self.labels = np.array(masks, dtype=np.uint64)
        self._label_sets = [frozenset(h.labels.items()) for h in self.hosts]

    @staticmethod
    def _code(codes: dict[str, int], value: str) -> int:
        return codes.setdefault(value, len(codes))

    def _label_ok(self, req: VMRequest) -> npt.NDArray[np.bool_]:
        if not req.required_labels:
            return np.ones(len(self.hosts), dtype=bool)
        wanted = set(req.required_labels.items())
        if self._use_bits:
            if any(p not in self._bits for p in wanted):
                return np.zeros(len(self.hosts), dtype=bool)
            mask = np.uint64(sum(1 << self._bits[p] for p in wanted))
            result: npt.NDArray[np.bool_] = (self.labels & mask) == mask
            return result
        return np.array([wanted <= s for s in self._label_sets], dtype=bool)

    def _filters(self, req: VMRequest) -> list[tuple[str, npt.NDArray[np.bool_]]]:
        n = len(self.hosts)
        out: list[tuple[str, npt.NDArray[np.bool_]]] = []
        if req.hypervisor:
            code = self._hyp_codes.get(req.hypervisor, -1)
            out.append(("hypervisor", self.hyp == code))
        if req.cluster_id is not None:
            out.append(("cluster", self.cluster == req.cluster_id))
        if req.required_labels:
            out.append(("labels", self._label_ok(req)))
        out.append(("vcpu", self.vcpu >= req.vcpu))
        out.append(("memory", self.mem >= req.memory_mb))
        out.append(("disk", self.disk >= req.disk_gb) if req.disk_gb else ("disk", np.ones(n, dtype=bool)))
        return out

    def candidates(self, req: VMRequest) -> IntArray:
        """Indices of the hosts that pass every filter."""
        ok = np.ones(len(self.hosts), dtype=bool)
        for _name, passed in self._filters(req):
            ok &= passed
        return np.flatnonzero(ok).astype(np.int64)

    def explain(self, req: VMRequest) -> str:
        """Why nothing fits: the first filter that leaves no host."""
        if not self.hosts:
            return "no host available"
        suffix = f" in cluster {req.cluster_name or req.cluster_id}" if req.cluster_id is not None else ""
        ok = np.ones(len(self.hosts), dtype=bool)
        for name, passed in self._filters(req):
            ok &= passed
            if ok.any():
                continue
            if name == "hypervisor":
                return f"no host matching hypervisor {req.hypervisor}"
            if name == "cluster":
                return f"no host in cluster {req.cluster_name or req.cluster_id}"
            if name == "labels":
                labels = ", ".join(f"{k}={v}" for k, v in sorted(req.required_labels.items()))
                return f"no host with label {labels}{suffix}"
            if name == "vcpu":
                return f"no host with {req.vcpu} free vCPU{suffix}"
            if name == "memory":
                return f"no host with {req.memory_mb} MiB free memory{suffix}"
            return f"no host with {req.disk_gb} GiB free disk{suffix}"
        return ""

    def rank(self, req: VMRequest, idx: IntArray, policy: Policy) -> IntArray:
        """``idx`` reordered best first (np.lexsort: last key is the primary one)."""
        if len(idx) <= 1:
            return idx
        ids = self.ids[idx]
        if policy == Policy.PACKING:
            left = (self.vcpu[idx] - req.vcpu) / self.vcpu_scale + (self.mem[idx] - req.memory_mb) / self.mem_scale
            order = np.lexsort((ids, -self.running[idx], left))
        elif policy == Policy.STRIPING:
            free = self.vcpu[idx] / self.vcpu_scale + self.mem[idx] / self.mem_scale
            order = np.lexsort((ids, -free, self.running[idx]))
        elif policy == Policy.LOAD_AWARE:
            order = np.lexsort((ids, -self.vcpu[idx], self.load[idx]))
        else:
            order = np.lexsort((ids, -self.priority[idx]))
        ranked: IntArray = idx[order]
        return ranked

    def best(self, req: VMRequest, idx: IntArray, policy: Policy) -> int:
        """The single best candidate index (cheaper than a full rank for one claim)."""
        if policy == Policy.PACKING:
            left = (self.vcpu[idx] - req.vcpu) / self.vcpu_scale + (self.mem[idx] - req.memory_mb) / self.mem_scale
            return int(idx[int(np.argmin(left))])
        return int(self.rank(req, idx, policy)[0])

    def claim(self, host_index: int, req: VMRequest) -> None:
        self.vcpu[host_index] -= req.vcpu
        self.mem[host_index] -= req.memory_mb
        self.disk[host_index] -= req.disk_gb
        self.running[host_index] += 1


def place(req: VMRequest, table: HostTable, policy: Policy) -> Decision:
    """Pick the best host for ``req`` and claim it in ``table``; or say why none fits."""
    idx = table.candidates(req)
    if len(idx) == 0:
        return Decision(req.id, None, table.explain(req))
    best = table.best(req, idx, policy)
    table.claim(best, req)
    return Decision(req.id, int(table.ids[best]), "")


def place_batch(reqs: Sequence[VMRequest], hosts: Sequence[HostView], policy: Policy) -> list[Decision]:
    """Place many VMs at once; for packing, biggest first (first-fit-decreasing)."""
    table = HostTable(hosts)
    order = list(range(len(reqs)))
    if policy == Policy.PACKING:
        order.sort(key=lambda i: (-(reqs[i].vcpu / table.vcpu_scale + reqs[i].memory_mb / table.mem_scale), i))
    out: list[Decision | None] = [None] * len(reqs)
    for i in order:
        out[i] = place(reqs[i], table, policy)
    return [d for d in out if d is not None]


def ranked_hosts(req: VMRequest, hosts: Sequence[HostView], policy: Policy) -> tuple[list[int], str]:
    """Host ids best first, or ([], the reason nothing fits)."""
    table = HostTable(hosts)
    idx = table.candidates(req)
    if len(idx) == 0:
        return [], table.explain(req)
    return [int(table.ids[i]) for i in table.rank(req, idx, policy)], ""
