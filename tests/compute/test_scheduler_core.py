"""The pure placement core: filters with their reasons, policies, claims never overbook."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compute.scheduler.core import HostTable, HostView, Policy, VMRequest, place_batch, ranked_hosts


def host(i: int, vcpu: int = 16, mem: int = 32768, running: int = 0, **kw: object) -> HostView:
    base: dict[str, object] = {
        "id": i, "name": f"h{i}", "cluster_id": None, "cluster_name": "", "hypervisor": "kvm", "labels": {},
        "free_vcpu": vcpu, "free_memory_mb": mem, "free_disk_gb": 100, "running_vms": running,
    }  # fmt: skip
    base.update(kw)
    return HostView(**base)  # type: ignore[arg-type]


def req(i: int = 1, vcpu: int = 2, mem: int = 1024, **kw: object) -> VMRequest:
    return VMRequest(id=i, vcpu=vcpu, memory_mb=mem, disk_gb=10, **kw)  # type: ignore[arg-type]


def test_reasons_name_the_first_filter_that_leaves_nothing() -> None:
    hosts = [host(1, cluster_id=7, cluster_name="c1", labels={"ssd": "yes"}), host(2, hypervisor="qemu")]
    assert ranked_hosts(req(hypervisor="xen"), hosts, Policy.PACKING) == ([], "no host matching hypervisor xen")
    assert ranked_hosts(req(cluster_id=9, cluster_name="c9"), hosts, Policy.PACKING)[1] == "no host in cluster c9"
    assert ranked_hosts(req(required_labels={"gpu": "1"}), hosts, Policy.PACKING)[1] == "no host with label gpu=1"
    assert ranked_hosts(req(vcpu=32), hosts, Policy.PACKING)[1] == "no host with 32 free vCPU"
    assert (
        ranked_hosts(req(vcpu=32, cluster_id=7, cluster_name="c1"), hosts, Policy.PACKING)[1]
        == "no host with 32 free vCPU in cluster c1"
    )
    assert ranked_hosts(req(mem=10**6), hosts, Policy.PACKING)[1] == "no host with 1000000 MiB free memory"
    assert ranked_hosts(req(required_labels={"ssd": "yes"}), hosts, Policy.PACKING) == ([1], "")


def test_policies() -> None:
    hosts = [
        host(1, vcpu=4, running=3, cpu_load=0.9, priority=1),
        host(2, vcpu=16, running=0, cpu_load=0.1, priority=5),
    ]
    assert ranked_hosts(req(), hosts, Policy.PACKING)[0] == [1, 2]
    assert ranked_hosts(req(), hosts, Policy.STRIPING)[0] == [2, 1]
    assert ranked_hosts(req(), hosts, Policy.LOAD_AWARE)[0] == [2, 1]
    assert ranked_hosts(req(), hosts, Policy.FIXED)[0] == [2, 1]


def test_many_labels_fall_back_from_bitmasks() -> None:
    hosts = [host(i, labels={f"k{i}": "v"}) for i in range(1, 80)]
    table = HostTable(hosts)
    assert list(table.candidates(req(required_labels={"k70": "v"}))) == [69]


@settings(max_examples=60, deadline=None)
@given(
    caps=st.lists(st.tuples(st.integers(1, 32), st.integers(512, 65536)), min_size=1, max_size=12),
    wants=st.lists(st.tuples(st.integers(1, 8), st.integers(128, 16384)), min_size=1, max_size=60),
    policy=st.sampled_from(list(Policy)),
)
def test_batch_placement_never_overbooks(
    caps: list[tuple[int, int]], wants: list[tuple[int, int]], policy: Policy
) -> None:
    hosts = [host(i + 1, vcpu=v, mem=m) for i, (v, m) in enumerate(caps)]
    reqs = [req(i + 1, vcpu=v, mem=m) for i, (v, m) in enumerate(wants)]
    decisions = place_batch(reqs, hosts, policy)
    assert [d.vm_id for d in decisions] == [r.id for r in reqs]  # original order
    used: dict[int, list[int]] = {h.id: [0, 0] for h in hosts}
    for d, r in zip(decisions, reqs, strict=True):
        if d.host_id is None:
            assert d.reason
        else:
            used[d.host_id][0] += r.vcpu
            used[d.host_id][1] += r.memory_mb
    for h in hosts:
        assert used[h.id][0] <= h.free_vcpu and used[h.id][1] <= h.free_memory_mb
