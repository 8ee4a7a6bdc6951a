"""Placement through the service layer: filters, per-cluster policies, reasons, admin choice."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from portal.errors import Conflict, PermissionDenied
from tests.factories import ClusterFactory, VMTemplateFactory

from .helpers import act, settle


def _vm(member: Any, project: Any, template: Any, name: str = "vm") -> VirtualMachine:
    (vm,) = services.create_vms(member, project=project, template=template, name=name)
    settle()
    return VirtualMachine.objects.get(pk=vm.pk)


def test_packing_fills_one_host_before_the_next(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    cluster = ClusterFactory(placement_policy="packing")
    a, b = make_sim_host("a", cluster=cluster), make_sim_host("b", cluster=cluster)
    template.cluster = cluster
    template.save()
    hosts = {_vm(member, project, template, f"v{i}").host_id for i in range(4)}
    assert len(hosts) == 1 and hosts <= {a.pk, b.pk}


def test_striping_spreads(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    cluster = ClusterFactory(placement_policy="striping")
    make_sim_host("a", cluster=cluster), make_sim_host("b", cluster=cluster)
    template.cluster = cluster
    template.save()
    hosts = [_vm(member, project, template, f"v{i}").host_id for i in range(4)]
    assert sorted(hosts.count(h) for h in set(hosts)) == [2, 2]


def test_requirements_on_labels_hypervisor_and_cluster(
    make_sim_host: Any, member: Any, project: Any, admin_user: Any
) -> None:
    c1 = ClusterFactory(name="c1")
    make_sim_host("plain", cluster=c1)
    ssd = make_sim_host("fast", cluster=c1, labels={"ssd": "yes"})
    tpl = VMTemplateFactory(project=project, owner=admin_user, required_labels={"ssd": "yes"}, cluster=c1)
    assert _vm(member, project, tpl).host_id == ssd.pk

    nowhere = VMTemplateFactory(project=project, owner=admin_user, required_labels={"gpu": "a100"})
    vm = _vm(member, project, nowhere)
    assert (vm.state, vm.schedule_message) == (S.PENDING, "no host with label gpu=a100")

    kvm = VMTemplateFactory(project=project, owner=admin_user, hypervisor="kvm")
    assert _vm(member, project, kvm).schedule_message == "no host matching hypervisor kvm"

    big = VMTemplateFactory(project=project, owner=admin_user, vcpu=8, cluster=c1)
    make_sim_host("other", vcpu=64)  # outside c1: does not count
    for i in range(4):
        _vm(member, project, big, f"big{i}")
    vm = _vm(member, project, big, "too-many")
    assert vm.schedule_message == "no host with 8 free vCPU in cluster c1"


def test_disabled_and_error_hosts_get_nothing(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any
) -> None:
    settings.NEPHELE_HOST_FAILED_PROBES = 2
    host = make_sim_host("a")
    services.set_host_state(admin_user, host.pk, "disable")
    vm = _vm(member, project, template)
    assert vm.state == S.PENDING and vm.schedule_message == "no enabled and monitored host"
    services.set_host_state(admin_user, host.pk, "enable")
    services.record_probe(host.pk, None, "connection refused")
    assert Host.objects.get(pk=host.pk).state != "ERROR"  # one missed probe is not a failure yet
    services.record_probe(host.pk, None, "connection refused")
    assert Host.objects.get(pk=host.pk).state == "ERROR"


def test_pending_vm_is_placed_when_capacity_appears(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    vm = _vm(member, project, template)
    assert vm.state == S.PENDING
    make_sim_host("late")
    from compute.tasks import schedule_pending

    assert schedule_pending()["placed"] == 1
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING


def test_admin_deploys_to_a_chosen_host_and_members_cannot(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    make_sim_host("a")
    b = make_sim_host("b")
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    with pytest.raises(PermissionDenied):
        act(member, vm, "deploy", host_id=b.pk)
    act(admin_user, vm, "deploy", host_id=b.pk)
    settle()
    vm.refresh_from_db()
    assert (vm.state, vm.host_id) == (S.RUNNING, b.pk)


def test_cold_migration_moves_the_domain(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    from compute.drivers.registry import get_driver

    a, b = make_sim_host("a"), make_sim_host("b")
    vm = _vm(member, project, template)
    src, dst = (a, b) if vm.host_id == a.pk else (b, a)
    with pytest.raises(Conflict, match="cannot migrate live"):
        act(admin_user, vm, "migrate", live=True)
    act(admin_user, vm, "migrate", host_id=dst.pk)
    settle()
    vm.refresh_from_db()
    assert (vm.state, vm.host_id) == (S.RUNNING, dst.pk)
    assert get_driver("libvirt", dst.uri).get_info(vm.domain_name).power_state.value == "running"
    assert all(d.name != vm.domain_name for d in get_driver("libvirt", src.uri).list_domains())
    src.refresh_from_db(), dst.refresh_from_db()
    assert (src.alloc_vcpu, dst.alloc_vcpu) == (0, vm.vcpu)
    assert [p.start_reason for p in vm.placements.all()] == ["migrate", "deploy"]


def test_resize_while_powered_off_claims_on_the_host(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    host = make_sim_host("a", vcpu=4)
    vm = _vm(member, project, template)  # 2 vCPU
    act(member, vm, "poweroff")
    settle()
    with pytest.raises(Conflict, match="not enough free capacity"):
        act(member, vm, "resize", vcpu=6)
    act(member, vm, "resize", vcpu=4)
    host.refresh_from_db()
    assert host.alloc_vcpu == 4
    act(member, vm, "resume")
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING


def test_a_hosts_claims_are_counted_on_its_row(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    """``alloc_vms`` follows every claim and release, so the scheduler's snapshot of the hosts
    never counts VMs (issue 13)."""
    host = make_sim_host("counted")
    vms = [_vm(member, project, template, f"c{i}") for i in range(3)]
    assert Host.objects.get(pk=host.pk).alloc_vms == 3
    act(member, vms[0], "poweroff")  # a powered-off VM keeps its claim
    settle()
    assert Host.objects.get(pk=host.pk).alloc_vms == 3
    act(member, vms[1], "undeploy")
    act(member, vms[2], "terminate")
    settle()
    assert VirtualMachine.objects.get(pk=vms[2].pk).state == S.DONE
    assert Host.objects.get(pk=host.pk).alloc_vms == 1


def test_the_host_snapshot_is_one_query_whatever_the_number_of_vms(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compute.scheduler.service import host_views

    make_sim_host("snap-a"), make_sim_host("snap-b")
    for i in range(6):
        _vm(member, project, template, f"s{i}")
    with CaptureQueriesContext(connection) as ctx:
        views = host_views()
    assert len(ctx.captured_queries) == 1
    assert sum(v.running_vms for v in views) == 6


def test_a_sweep_ranks_every_pending_vm_on_one_snapshot(
    make_sim_host: Any, member: Any, project: Any, admin_user: Any
) -> None:
    """schedule_pending reads the hosts once for the whole sweep, and each VM's pick is taken
    from that snapshot before the next is ranked: two hosts of 16 vCPUs take two VMs of 10,
    the third waits with the reason."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compute.tasks import schedule_pending

    make_sim_host("big-a", vcpu=16), make_sim_host("big-b", vcpu=16)
    tpl = VMTemplateFactory(project=project, owner=admin_user, vcpu=10, memory_mb=512)
    vms = [services.create_vms(member, project=project, template=tpl, name=f"p{i}")[0] for i in range(3)]
    with CaptureQueriesContext(connection) as ctx:
        result = schedule_pending()
    snapshots = [q for q in ctx.captured_queries if 'FROM "compute_host"' in q["sql"] and "MONITORED" in q["sql"]]
    assert len(snapshots) == 1, [q["sql"][:120] for q in snapshots]
    assert result["placed"] == 2
    placed = VirtualMachine.objects.filter(pk__in=[v.pk for v in vms])
    assert sorted(placed.exclude(host=None).values_list("host__name", flat=True)) == ["big-a", "big-b"]
    waiting = placed.get(host=None)
    assert waiting.state == S.PENDING and waiting.schedule_message == "no host with 10 free vCPU"


def _sweep_queries(member: Any, project: Any, template: Any, n: int) -> tuple[int, int, dict[str, object]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compute.tasks import schedule_pending

    for i in range(n):
        (vm,) = services.create_vms(member, project=project, template=template, name=f"q{n}-{i}", hold=True)
        VirtualMachine.objects.filter(pk=vm.pk).update(state=S.PENDING)
    with CaptureQueriesContext(connection) as ctx:
        result = schedule_pending()
    events = sum(q["sql"].startswith('INSERT INTO "monitoring_event"') for q in ctx.captured_queries)
    return len(ctx.captured_queries), events, result


def test_a_sweeps_queries_per_vm_do_not_grow_and_its_rows_go_in_bulk(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    """Issue 13: a sweep's cost per VM is a lock, a claim and the VM's update (plus its savepoint);
    state changes, events, placements and outbox rows are inserted once per chunk, and the
    chunk's step orders are built with one query per kind of row, not per VM."""
    for i in range(4):
        make_sim_host(f"bulk-{i}", vcpu=64, memory_mb=262144)
    few, few_events, r1 = _sweep_queries(member, project, template, 4)
    many, many_events, r2 = _sweep_queries(member, project, template, 20)
    assert r1["placed"] == 4 and r2["placed"] == 20, (r1, r2)
    per_vm = (many - few) / 16
    assert per_vm <= 5, f"{per_vm} queries per extra VM ({few} for 4, {many} for 20)"
    assert few_events == many_events == 1, "one INSERT of events per chunk"


def test_one_sweep_at_a_time(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    """A second sweep while one runs (its advisory lock held by another session) skips."""
    import zlib

    import psycopg
    from django.db import connection

    from compute.tasks import schedule_pending

    make_sim_host("one-at-a-time")
    (vm,) = services.create_vms(member, project=project, template=template, name="waits", hold=True)
    VirtualMachine.objects.filter(pk=vm.pk).update(state=S.PENDING)
    db = connection.settings_dict
    key = zlib.crc32(b"nephele.sweep.schedule_pending")
    other = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True)
    try:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (True,)
        assert schedule_pending()["skipped"] == "another sweep is running"
        assert VirtualMachine.objects.get(pk=vm.pk).state == S.PENDING
        other.execute("SELECT pg_advisory_unlock(%s)", (key,))
        assert schedule_pending()["placed"] == 1
    finally:
        other.close()


def test_a_claim_never_lands_on_a_host_disabled_since_the_snapshot(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    from compute.scheduler.service import rank_batch

    host = make_sim_host("goes-away")
    (vm,) = services.create_vms(member, project=project, template=template, name="late", hold=True)
    VirtualMachine.objects.filter(pk=vm.pk).update(state=S.PENDING)
    plan = rank_batch([VirtualMachine.objects.get(pk=vm.pk)])
    assert plan[vm.pk][0] == [host.pk]
    Host.objects.filter(pk=host.pk).update(state="DISABLED")  # an operator disables it meanwhile
    placed = services.place_pending(vm.pk, plan[vm.pk])
    assert placed is not None and placed.state == S.PENDING and placed.host_id is None
    assert Host.objects.get(pk=host.pk).alloc_vms == 0
