"""The scheduler places a VM only on a host that reaches a READY system datastore with room for
the VM's disk (``vm.disk_gb``). A datastore with no clusters is reached from every host; one with
clusters only from those clusters' hosts. A cloud without system datastores places as before."""

from __future__ import annotations

from typing import Any

from compute import services
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from storage.drivers.base import PoolInfo, PoolState
from storage.models import DatastoreKind, DatastoreState
from storage.services import record_pool_info
from tests.conftest import client_for
from tests.factories import ClusterFactory

from .factories import GIB, DatastoreFactory


def _pending(member: Any, project: Any, template: Any, name: str = "vm") -> VirtualMachine:
    (vm,) = services.create_vms(member, project=project, template=template, name=name)
    return vm


def _place(vm: VirtualMachine) -> VirtualMachine:
    services.place_vm(vm.pk)
    return VirtualMachine.objects.get(pk=vm.pk)


def _two_clusters(make_sim_host: Any, template: Any) -> tuple[Any, Any]:
    """Hosts a (cluster ca, small) and b (cluster cb, large); packing would pick a."""
    ca, cb = ClusterFactory(name="ca"), ClusterFactory(name="cb")
    a = make_sim_host("a", cluster=ca, vcpu=4, memory_mb=8192)
    b = make_sim_host("b", cluster=cb, vcpu=64, memory_mb=262144)
    return a, b


def test_without_system_datastores_the_constraint_does_not_apply(make_sim_host: Any, member: Any, project: Any,
                                                                  template: Any) -> None:  # fmt: skip
    host = make_sim_host("h")
    DatastoreFactory(kind=DatastoreKind.IMAGE, free_bytes=0)  # image datastores do not count
    vm = _place(_pending(member, project, template))
    assert (vm.state, vm.host_id, vm.schedule_message) == (S.PROLOG, host.pk, "")


def test_an_unrestricted_system_datastore_with_room_is_reached_from_every_host(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    a, _b = _two_clusters(make_sim_host, template)
    DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=template.disk_gb * GIB)
    vm = _place(_pending(member, project, template))
    assert (vm.state, vm.host_id) == (S.PROLOG, a.pk)  # packing's own choice stands


def test_only_hosts_of_the_datastores_clusters_are_used(make_sim_host: Any, member: Any, project: Any,
                                                        template: Any) -> None:  # fmt: skip
    a, b = _two_clusters(make_sim_host, template)
    DatastoreFactory(kind=DatastoreKind.SYSTEM, clusters=[b.cluster])
    assert _place(_pending(member, project, template, "v1")).host_id == b.pk

    DatastoreFactory(kind=DatastoreKind.SYSTEM, clusters=[a.cluster])
    assert _place(_pending(member, project, template, "v2")).host_id == a.pk


def test_no_room_leaves_the_vm_pending_with_the_reason(make_sim_host: Any, member: Any, project: Any,
                                                       template: Any) -> None:  # fmt: skip
    make_sim_host("h")
    DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=template.disk_gb * GIB - 1)
    DatastoreFactory(kind=DatastoreKind.SYSTEM, state=DatastoreState.DISABLED, free_bytes=1000 * GIB)
    DatastoreFactory(kind=DatastoreKind.SYSTEM, state=DatastoreState.ERROR, free_bytes=1000 * GIB)
    DatastoreFactory(kind=DatastoreKind.IMAGE, free_bytes=1000 * GIB)
    vm = _place(_pending(member, project, template))
    assert vm.state == S.PENDING and vm.host_id is None
    assert vm.schedule_message == f"no host reaches a system datastore with {template.disk_gb} GiB free"


def test_a_datastore_out_of_reach_counts_as_none(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    make_sim_host("h", cluster=ClusterFactory(name="here"))
    DatastoreFactory(kind=DatastoreKind.SYSTEM, clusters=[ClusterFactory(name="elsewhere")])
    vm = _place(_pending(member, project, template))
    assert vm.schedule_message == f"no host reaches a system datastore with {template.disk_gb} GiB free"


def test_other_filters_keep_their_own_reason(make_sim_host: Any, member: Any, project: Any, template: Any) -> None:
    host = make_sim_host("h", vcpu=template.vcpu)
    Host.objects.filter(pk=host.pk).update(alloc_vcpu=template.vcpu)  # big enough, but full now
    DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=0)
    vm = _place(_pending(member, project, template))
    assert vm.schedule_message == f"no host with {template.vcpu} free vCPU"


def test_deploy_through_the_api_waits_for_a_datastore_then_places(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    host = make_sim_host("h")
    ds = DatastoreFactory(kind=DatastoreKind.SYSTEM, state=DatastoreState.DISABLED)
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    admin = client_for(admin_user)

    resp = admin.post(f"/api/v1/vms/{vm.pk}/action/", {"action": "deploy"}, format="json")
    assert resp.status_code == 202, resp.content
    body = admin.get(f"/api/v1/vms/{vm.pk}/").json()
    assert (body["state"], body["host"]) == (S.PENDING, None)
    assert body["schedule_message"] == f"no host reaches a system datastore with {template.disk_gb} GiB free"

    assert admin.post(f"/api/v1/datastores/{ds.pk}/action/", {"action": "enable"}, format="json").status_code == 200
    resp = admin.post(f"/api/v1/vms/{vm.pk}/action/", {"action": "deploy"}, format="json")
    assert resp.status_code == 202, resp.content
    body = admin.get(f"/api/v1/vms/{vm.pk}/").json()
    assert (body["state"], body["host"], body["schedule_message"]) == (S.PROLOG, host.name, "")


def _disk_on(vm: VirtualMachine, ds: Any, size_bytes: int) -> None:
    """The system disk the volume manager made for ``vm`` when it was created (an empty disk)."""
    from storage.models import VMDisk

    VMDisk.objects.create(vm=vm, datastore=ds, path=f"{ds.path}/vm-{vm.pk}/disk.0.qcow2", clone="empty",
                          size_bytes=size_bytes, target="vdb")  # fmt: skip


def test_a_vm_whose_disks_live_on_a_datastore_goes_where_that_datastore_is_reached(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    a, b = _two_clusters(make_sim_host, template)
    DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=1000 * GIB)  # reached by both; packing picks a
    only_b = DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=1000 * GIB, clusters=[b.cluster])
    vm = _pending(member, project, template)
    _disk_on(vm, only_b, 5 * GIB)
    assert _place(vm).host_id == b.pk


def test_the_disks_made_from_images_count_towards_the_room_needed(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    make_sim_host("h")
    ds = DatastoreFactory(kind=DatastoreKind.SYSTEM, free_bytes=(template.disk_gb + 4) * GIB)
    vm = _pending(member, project, template)
    _disk_on(vm, ds, 5 * GIB)  # disk_gb + 5 GiB > free
    vm = _place(vm)
    assert vm.schedule_message == f"no host reaches a system datastore with {template.disk_gb + 5} GiB free"

    room = (template.disk_gb + 5) * GIB  # the next measurement finds more room
    record_pool_info(ds.pk, PoolInfo("p", PoolState.RUNNING, 2 * room, room, room))
    VirtualMachine.objects.filter(pk=vm.pk).update(schedule_message="")
    assert _place(vm).state == S.PROLOG
