"""Volume services with real ``qemu-img`` files: create, attach / detach, grow, snapshots,
save a VM disk as an image, delete; quotas under row locks; permissions of every operation."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from django.db import connection

from compute import services as compute
from compute.drivers.registry import get_driver
from compute.models import VirtualMachine
from compute.states import VMState as S
from images.models import Image
from portal.errors import Conflict, InvalidInput, NotFound
from storage.models import VMDisk, Volume, VolumeSnapshot
from storage.services import disks as disk_svc
from storage.services import volumes as svc
from tenants import quotas
from tenants.quotas import QuotaExceeded
from tests.compute.helpers import act, settle
from tests.conftest import requires_postgres

from .volumes_support import MIB, make_image, qemu_info, read_at, run, write_pattern

GIB = 1024**3


def _usage(project: Any) -> dict[str, int]:
    return {q.resource: q.used for q in quotas.usage(project) if q.resource in ("volumes", "volume_gb")}


def _volume(eager: Any, actor: Any, project: Any, name: str = "data", **kw: Any) -> Volume:
    kw.setdefault("size_bytes", 64 * MIB)
    vol = run(eager, svc.create_volume, actor, project=project, name=name, **kw)
    vol.refresh_from_db()
    assert vol.state == "available", vol.state_message
    return vol


def _running_vm(member: Any, project: Any, template: Any, name: str = "vm") -> VirtualMachine:
    (vm,) = compute.create_vms(member, project=project, template=template, name=name)
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING, vm.last_error
    return vm


def test_create_empty_volume(eager: Any, member: Any, project: Any, system_ds: Any) -> None:
    vol = _volume(eager, member, project, size_bytes=GIB + 1)
    assert vol.path.startswith(system_ds.path) and os.path.exists(vol.path)
    info = qemu_info(vol.path)
    assert info["format"] == "qcow2" and info["virtual-size"] == vol.size_bytes == GIB + 512  # whole sectors
    assert _usage(project) == {"volumes": 1, "volume_gb": 2}  # whole GiB, rounded up


def test_create_from_image_copies_it_and_grows_the_copy(
    eager: Any, member: Any, project: Any, image_ds: Any, system_ds: Any
) -> None:
    img = make_image(member, project, image_ds, "seed", pattern=0x5A, fmt="raw")
    vol = _volume(eager, member, project, image=img.pk, size_bytes=128 * MIB)
    info = qemu_info(vol.path)
    assert "backing-filename" not in info and info["virtual-size"] == 128 * MIB
    assert read_at(vol.path, "qcow2", 0, 3) == b"ZZZ"
    assert vol.source_image_id == img.pk


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"name": "bad name!"}, "name"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": 17 * 1024 * GIB}, "size_bytes"),
        ({"size_bytes": None}, "size_bytes"),
        ({"format": "vmdk"}, "format"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    eager: Any, member: Any, project: Any, kw: dict[str, Any], field: str
) -> None:
    args = {"name": "ok", "size_bytes": MIB, **kw}
    with pytest.raises(InvalidInput) as exc:
        run(eager, svc.create_volume, member, project=project, **args)
    assert exc.value.field == field
    assert not Volume.objects.exists() and _usage(project) == {"volumes": 0, "volume_gb": 0}


def test_quotas_count_and_size(eager: Any, member: Any, project: Any) -> None:
    quotas.set_limit(project, "volume_gb", 4)
    quotas.set_limit(project, "volumes", 2)
    _volume(eager, member, project, "a", size_bytes=2 * GIB)
    with pytest.raises(QuotaExceeded, match="volume_gb 2 of 4 used, 3 requested"):
        run(eager, svc.create_volume, member, project=project, name="b", size_bytes=3 * GIB)
    b = _volume(eager, member, project, "b", size_bytes=GIB)
    with pytest.raises(QuotaExceeded, match="volumes 2 of 2 used, 1 requested"):
        run(eager, svc.create_volume, member, project=project, name="c", size_bytes=1)
    with pytest.raises(QuotaExceeded, match="volume_gb 3 of 4 used, 2 requested"):
        run(eager, svc.grow_volume, member, b.pk, 3 * GIB)
    assert Volume.objects.get(pk=b.pk).size_bytes == GIB
    run(eager, svc.delete_volume, member, b.pk)
    assert _usage(project) == {"volumes": 1, "volume_gb": 2}


def test_cold_attach_reaches_the_domain_at_deploy_and_terminate_gives_it_back(
    eager: Any, make_sim_host: Any, member: Any, project: Any, template: Any, system_ds: Any
) -> None:
    host = make_sim_host()
    vol = _volume(eager, member, project)
    (vm,) = compute.create_vms(member, project=project, template=template, name="vm", hold=True)
    run(eager, svc.attach_volume, member, vol.pk, vm.pk)
    vol.refresh_from_db()
    assert (vol.state, vol.vm_id, vol.target) == ("in-use", vm.pk, "vda")
    act(member, vm, "release")
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING
    xml = get_driver(host.driver, host.uri)._domain(vm.domain_name).XMLDesc(0)
    assert vol.path in xml and f"nephele-vol-{vol.pk}" in xml

    with pytest.raises(Conflict, match="no disk hotplug"):  # libvirt's test driver has no hotplug
        run(eager, svc.detach_volume, member, vol.pk)
    with pytest.raises(Conflict, match="power it off"):
        run(eager, svc.snapshot_volume, member, vol.pk, "s1")
    with pytest.raises(Conflict, match=f"attached to VM {vm.name}"):
        run(eager, svc.delete_volume, member, vol.pk)

    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    vol.refresh_from_db()
    assert (vol.state, vol.vm_id, vol.target) == ("available", None, "")
    assert os.path.exists(vol.path) and not VMDisk.objects.filter(volume=vol).exists()


def test_attach_refusals(eager: Any, make_sim_host: Any, member: Any, project: Any, template: Any,
                         other_tenant: Any) -> None:  # fmt: skip
    make_sim_host()
    vol = _volume(eager, member, project)
    vm = _running_vm(member, project, template)
    with pytest.raises(Conflict, match="no disk hotplug"):
        run(eager, svc.attach_volume, member, vol.pk, vm.pk)
    (held,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    with pytest.raises(InvalidInput, match="vdb"):
        run(eager, svc.attach_volume, member, vol.pk, held.pk, target="sda")
    run(eager, svc.attach_volume, member, vol.pk, held.pk, target="vdc")
    with pytest.raises(Conflict, match="not available"):
        run(eager, svc.attach_volume, member, vol.pk, held.pk)
    template.public = True
    template.save()
    other_vm = compute.create_vms(other_tenant, project=other_tenant.memberships.first().project,
                                  template=template, name="theirs", hold=True)[0]  # fmt: skip
    run(eager, svc.detach_volume, member, vol.pk)
    with pytest.raises(NotFound):
        run(eager, svc.attach_volume, member, vol.pk, other_vm.pk)
    assert Volume.objects.get(pk=vol.pk).state == "available"


def test_grow_snapshot_revert_delete_snapshot(eager: Any, member: Any, project: Any) -> None:
    vol = _volume(eager, member, project)
    write_pattern(vol.path, "qcow2", 0, 0xAA)
    snap = run(eager, svc.snapshot_volume, member, vol.pk, "before")
    snap.refresh_from_db()
    assert snap.ready and snap.tag in {s["name"] for s in qemu_info(vol.path)["snapshots"]}
    with pytest.raises(Conflict, match="already has a snapshot"):
        run(eager, svc.snapshot_volume, member, vol.pk, "before")
    write_pattern(vol.path, "qcow2", 0, 0xBB)
    run(eager, svc.revert_volume, member, vol.pk, snap.pk)
    assert read_at(vol.path, "qcow2", 0, 2) == b"\xaa\xaa"
    run(eager, svc.grow_volume, member, vol.pk, 256 * MIB)
    assert qemu_info(vol.path)["virtual-size"] == 256 * MIB and Volume.objects.get(pk=vol.pk).size_bytes == 256 * MIB
    with pytest.raises(InvalidInput, match="larger than"):
        run(eager, svc.grow_volume, member, vol.pk, MIB)
    run(eager, svc.delete_snapshot, member, vol.pk, snap.pk)
    assert not VolumeSnapshot.objects.exists() and not qemu_info(vol.path).get("snapshots")
    assert Volume.objects.get(pk=vol.pk).state == "available"


def test_delete_removes_file_row_and_quota(eager: Any, member: Any, project: Any) -> None:
    vol = _volume(eager, member, project)
    run(eager, svc.delete_volume, member, vol.pk)
    assert not Volume.objects.exists() and not os.path.exists(vol.path)
    assert _usage(project) == {"volumes": 0, "volume_gb": 0}


def test_a_failed_create_is_error_and_deletable(eager: Any, member: Any, project: Any, tmp_path: Any) -> None:
    from storage.models import Datastore

    (tmp_path / "file").write_text("a file where the datastore's directory should be")
    ds = Datastore.objects.create(name="broken", kind="system", path=str(tmp_path / "file" / "ds"))
    vol = run(eager, svc.create_volume, member, project=project, name="x", size_bytes=MIB, datastore=ds.pk)
    vol.refresh_from_db()
    assert vol.state == "error" and "create failed" in vol.state_message
    run(eager, svc.delete_volume, member, vol.pk)
    assert not Volume.objects.exists() and _usage(project) == {"volumes": 0, "volume_gb": 0}


def test_save_vm_disk_as_image(eager: Any, make_sim_host: Any, member: Any, project: Any, template: Any,
                               image_ds: Any, system_ds: Any) -> None:  # fmt: skip
    make_sim_host()
    base = make_image(member, project, image_ds, "base", pattern=0x01)
    disk_svc.add_template_disk(member, template.pk, image=base.pk)
    vm = _running_vm(member, project, template)
    disk = VMDisk.objects.get(vm=vm)
    write_pattern(disk.path, "qcow2", 0, 0x77)  # the guest's change
    with pytest.raises(Conflict, match="power VM"):
        run(eager, disk_svc.save_disk_as_image, member, disk.pk, name="golden")
    act(member, vm, "poweroff", hard=True)
    settle(schedule=False)
    run(eager, disk_svc.save_disk_as_image, member, disk.pk, name="golden")
    img = Image.objects.get(name="golden")
    assert img.state == "ready" and img.project_id == project.pk and img.datastore_id == image_ds.pk
    info = qemu_info(img.path)
    assert "backing-filename" not in info  # flattened: independent of the base image
    assert read_at(img.path, "qcow2", 0, 2) == b"\x77\x77"
    assert VMDisk.objects.get(pk=disk.pk).state == "attached"


def _ops(vol: Volume, vm: VirtualMachine, snap: VolumeSnapshot, disk: VMDisk, template: Any) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:  # fmt: skip
    return [
        (svc.create_volume, (), {"project": vol.project_id, "name": "n", "size_bytes": MIB}),
        (svc.attach_volume, (vol.pk, vm.pk), {}),
        (svc.detach_volume, (vol.pk,), {}),
        (svc.grow_volume, (vol.pk, 2 * GIB), {}),
        (svc.snapshot_volume, (vol.pk, "s2"), {}),
        (svc.revert_volume, (vol.pk, snap.pk), {}),
        (svc.delete_snapshot, (vol.pk, snap.pk), {}),
        (svc.delete_volume, (vol.pk,), {}),
        (disk_svc.save_disk_as_image, (disk.pk,), {"name": "img"}),
        (disk_svc.add_template_disk, (template.pk,), {"size_bytes": MIB}),
    ]


@pytest.mark.parametrize("who", ["viewer", "other_tenant"])
def test_every_operation_refuses_viewers_and_strangers(eager: Any, member: Any, project: Any, template: Any,
                                                       request: Any, who: str) -> None:  # fmt: skip
    from tests.portal.test_authorization_matrix import _state

    vol = _volume(eager, member, project)
    snap = run(eager, svc.snapshot_volume, member, vol.pk, "s1")
    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    disk = VMDisk.objects.create(vm=vm, path="/nonexistent", target="vdz")
    actor = request.getfixturevalue(who)
    before = _state()
    for fn, args, kw in _ops(vol, vm, snap, disk, template):
        with pytest.raises(NotFound):
            run(eager, fn, actor, *args, **kw)
    assert _state() == before


@requires_postgres()
def test_concurrent_creates_never_pass_the_volume_quota(transactional_db: Any, member: Any, project: Any) -> None:
    """Eight threads create 1 GiB volumes at once against volume_gb = 3: exactly three win."""
    quotas.set_limit(project, "volume_gb", 3)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            svc.create_volume(member, project=project, name=f"v{i}", size_bytes=GIB)
            results.append("ok")
        except QuotaExceeded:
            results.append("quota")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] * 3 + ["quota"] * 5
    assert Volume.objects.count() == 3 and _usage(project) == {"volumes": 3, "volume_gb": 3}


def test_an_administrator_recovers_a_stuck_operation(eager: Any, member: Any, admin_user: Any, project: Any,
                                                      template: Any) -> None:  # fmt: skip
    from portal.errors import PermissionDenied

    vol = _volume(eager, member, project)
    svc.grow_volume(member, vol.pk, GIB + MIB)  # its task never runs (no agent)
    assert _usage(project) == {"volumes": 1, "volume_gb": 2}
    with pytest.raises(PermissionDenied):
        svc.recover_volume(member, vol.pk)
    svc.recover_volume(admin_user, vol.pk)
    vol.refresh_from_db()
    assert (vol.state, vol.operation, vol.size_bytes) == ("available", "", 64 * MIB)
    assert "abandoned" in vol.state_message and _usage(project) == {"volumes": 1, "volume_gb": 1}
    with pytest.raises(Conflict, match="no operation"):
        svc.recover_volume(admin_user, vol.pk)
    assert svc.volume_order(vol.pk, vol.operation_seq - 1) is None  # the late task finds nothing to do
