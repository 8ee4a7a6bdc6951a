"""VM disks from template disks: overlays, copies, empty disks, persistent images, kernels.

Files are made by real ``qemu-img`` at PROLOG when a VM is deployed to a simulated host (the
in-process agent of ``tests/compute/helpers.settle``, and once through the real Celery agent).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from compute import services as compute
from compute.drivers.registry import get_driver
from compute.models import VirtualMachine
from compute.states import VMState as S
from images.models import Image
from portal.errors import Conflict, InvalidInput
from storage import vmdisks
from storage.models import VMDisk
from storage.services import disks
from tests.compute.helpers import act, settle
from tests.conftest import client_for, wait_for

from .volumes_support import MIB, make_image, qemu_info, read_at, write_pattern


def _vm(member: Any, project: Any, template: Any, name: str = "vm") -> VirtualMachine:
    (vm,) = compute.create_vms(member, project=project, template=template, name=name)
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING, (vm.state, vm.last_error)
    return vm


def test_overlay_and_empty_disk_created_on_deploy_and_removed_on_terminate(
    make_sim_host: Any, member: Any, project: Any, template: Any, image_ds: Any, system_ds: Any
) -> None:
    host = make_sim_host()
    base = make_image(member, project, image_ds, "debian", pattern=0xAB)
    disks.add_template_disk(member, template.pk, image=base.pk)
    disks.add_template_disk(member, template.pk, size_bytes=32 * MIB)
    vm = _vm(member, project, template)

    vda, vdb = VMDisk.objects.filter(vm=vm).order_by("target")
    assert (vda.target, vda.clone, vdb.target, vdb.clone) == ("vda", "cow", "vdb", "empty")
    assert vda.path.startswith(system_ds.path) and os.path.exists(vda.path)
    info = qemu_info(vda.path)
    assert info["format"] == "qcow2" and info["backing-filename"] == base.path
    assert info["backing-filename-format"] == "qcow2"
    assert qemu_info(vdb.path)["virtual-size"] == 32 * MIB
    xml = get_driver(host.driver, host.uri)._domain(vm.domain_name).XMLDesc(0)
    assert vda.path in xml and vdb.path in xml

    # the guest writes to its overlay; the image stays clean
    write_pattern(vda.path, "qcow2", 0, 0xCD)
    assert read_at(vda.path, "qcow2", 0, 4) == b"\xcd" * 4
    assert read_at(base.path, "qcow2", 0, 4) == b"\xab" * 4

    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.DONE
    assert not os.path.exists(vda.path) and not os.path.exists(vdb.path)
    assert read_at(base.path, "qcow2", 0, 4) == b"\xab" * 4
    # the next VM starts from the clean image
    vm2 = _vm(member, project, template, "vm2")
    assert read_at(VMDisk.objects.get(vm=vm2, target="vda").path, "qcow2", 0, 4) == b"\xab" * 4


def test_copy_clone_mode_makes_a_full_copy_grown_to_the_template_size(
    make_sim_host: Any, member: Any, project: Any, template: Any, image_ds: Any, system_ds: Any
) -> None:
    make_sim_host()
    system_ds.clone_mode = "copy"
    system_ds.save()
    base = make_image(member, project, image_ds, "raw-base", fmt="raw", pattern=0x11)
    disks.add_template_disk(member, template.pk, image=base.pk, size_bytes=128 * MIB)
    vm = _vm(member, project, template)
    disk = VMDisk.objects.get(vm=vm)
    info = qemu_info(disk.path)
    assert "backing-filename" not in info and info["virtual-size"] == 128 * MIB
    assert read_at(disk.path, "qcow2", 0, 2) == b"\x11\x11"


def test_persistent_image_is_written_in_place_one_vm_at_a_time(
    make_sim_host: Any, member: Any, project: Any, template: Any, image_ds: Any
) -> None:
    make_sim_host()
    img = make_image(member, project, image_ds, "mine", persistent=True, pattern=0x01)
    disks.add_template_disk(member, template.pk, image=img.pk)
    vm = _vm(member, project, template)
    disk = VMDisk.objects.get(vm=vm)
    assert disk.path == img.path and disk.persistent and not disk.volatile
    assert Image.objects.get(pk=img.pk).state == "used"
    assert [v.pk for v in vmdisks.vms_using_image(img.pk)] == [vm.pk]

    with pytest.raises(Conflict, match=f"in use by VM {vm.name}"):
        compute.create_vms(member, project=project, template=template, name="second")
    assert VirtualMachine.objects.filter(name="second").count() == 0

    write_pattern(img.path, "qcow2", 0, 0x42)  # the guest's write
    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    img.refresh_from_db()
    assert img.state == "ready" and os.path.exists(img.path)
    assert read_at(img.path, "qcow2", 0, 2) == b"\x42\x42"  # kept
    assert vmdisks.vms_using_image(img.pk) == []


def test_template_with_persistent_image_makes_one_vm_at_a_time(
    member: Any, project: Any, template: Any, image_ds: Any
) -> None:
    img = make_image(member, project, image_ds, "p", persistent=True)
    disks.add_template_disk(member, template.pk, image=img.pk)
    with pytest.raises(InvalidInput) as exc:
        compute.create_vms(member, project=project, template=template, name="many", count=2)
    assert exc.value.field == "count"
    assert not VirtualMachine.objects.exists() and Image.objects.get(pk=img.pk).state == "ready"


def test_kernel_and_ramdisk_images_boot_the_vm(member: Any, project: Any, template: Any, image_ds: Any) -> None:
    kernel = make_image(member, project, image_ds, "vmlinuz", type="kernel", fmt="raw", size=MIB)
    initrd = make_image(member, project, image_ds, "initrd", type="ramdisk", fmt="raw", size=MIB)
    disks.add_template_disk(member, template.pk, image=kernel.pk, cmdline="console=ttyS0 id={vm_name}")
    disks.add_template_disk(member, template.pk, image=initrd.pk)
    with pytest.raises(InvalidInput, match="kernel images only"):
        disks.add_template_disk(member, template.pk, image=initrd.pk, cmdline="x")
    (vm,) = compute.create_vms(member, project=project, template=template, name="k", hold=True)
    spec = compute.domain_spec(VirtualMachine.objects.get(pk=vm.pk))
    assert (spec.kernel, spec.initrd, spec.cmdline) == (kernel.path, initrd.path, f"console=ttyS0 id={vm.pk}")
    assert [d.target for d in spec.disks if d.path in (kernel.path, initrd.path)] == []


def test_template_disk_checks(member: Any, viewer: Any, other_tenant: Any, project: Any, template: Any,
                              image_ds: Any) -> None:  # fmt: skip
    from portal.errors import NotFound

    with pytest.raises(InvalidInput, match="size_bytes"):
        disks.add_template_disk(member, template.pk, size_bytes=template.disk_gb * 1024**3 + 1)
    with pytest.raises(InvalidInput, match="size_bytes"):
        disks.add_template_disk(member, template.pk)
    with pytest.raises(NotFound):
        disks.add_template_disk(viewer, template.pk, size_bytes=MIB)
    foreign = make_image(other_tenant, other_tenant.memberships.first().project, image_ds, "theirs")
    with pytest.raises(NotFound, match="image"):
        disks.add_template_disk(member, template.pk, image=foreign.pk)
    assert not template.disks.exists()


def test_overlay_made_by_the_real_agent(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, image_ds: Any, system_ds: Any
) -> None:
    """Through the API and real Celery on Redis: deploy makes the overlay, terminate removes it."""
    make_sim_host()
    base = make_image(member, project, image_ds, "deb")
    api = client_for(member)
    resp = api.post("/api/v1/template-disks/", {"template": template.pk, "image": base.pk}, format="json")
    assert resp.status_code == 201, resp.content
    resp = api.post("/api/v1/vms/", {"name": "web", "project": project.pk, "template": template.pk}, format="json")
    pk = resp.json()[0]["id"]
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING)
    disks = api.get(f"/api/v1/vm-disks/?vm={pk}").json()["results"]
    assert [d["target"] for d in disks] == ["vda"]
    path = VMDisk.objects.get(pk=disks[0]["id"]).path
    assert qemu_info(path)["backing-filename"] == base.path
    assert (
        api.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json").status_code == 202
    )
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.DONE)
    wait_for(lambda: not os.path.exists(path))


def test_image_delete_is_refused_while_a_vm_uses_it(
    make_sim_host: Any, member: Any, project: Any, template: Any, image_ds: Any
) -> None:
    from images import services as images

    make_sim_host()
    base = make_image(member, project, image_ds, "shared-base")
    disks.add_template_disk(member, template.pk, image=base.pk)
    vm = _vm(member, project, template)
    with pytest.raises(Conflict, match=f"used by VM {vm.name}"):
        images.delete_image(member, base.pk)
    assert [t.pk for t in vmdisks.templates_using_image(base.pk)] == [template.pk]
    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    with pytest.raises(Conflict, match=f"disk of template {template.name}"):  # the template still holds it
        images.delete_image(member, base.pk)
    disks.remove_template_disk(member, template.disks.get().pk)
    images.delete_image(member, base.pk)  # a DONE VM's disk row does not hold it
    assert not Image.objects.filter(pk=base.pk).exists() and not template.disks.exists()
    assert VMDisk.objects.get(vm=vm).image_id is None


def test_disks_follow_the_compute_boot_images_overlay(member: Any, project: Any, template: Any) -> None:
    from tests.factories import BootImageFactory

    template.boot_image = BootImageFactory(project=project, kind="disk", disk_path="/var/lib/boot.qcow2")
    template.save()
    disks.add_template_disk(member, template.pk, size_bytes=MIB)
    (vm,) = compute.create_vms(member, project=project, template=template, name="b", hold=True)
    spec = compute.domain_spec(VirtualMachine.objects.get(pk=vm.pk))
    assert spec.disk_path == ""  # never the boot image's own file
    assert [
        (d.target, d.backing, d.backing_format, d.create_size_bytes, d.delete_on_release)
        for d in spec.disks
        if d.target.startswith("vd")
    ] == [("vda", "/var/lib/boot.qcow2", "qcow2", 0, True), ("vdb", "", "", MIB, True)]
    assert spec.disks[0].path.endswith(f"/{vm.domain_name}/boot.qcow2")


def test_a_vm_made_before_boot_overlays_still_gets_one(member: Any, project: Any, template: Any) -> None:
    """A VM created before boot disks had their row (none for vda) is given an overlay in the
    default place at its next deploy, never its boot image's file."""
    from django.conf import settings

    from tests.factories import BootImageFactory

    template.boot_image = BootImageFactory(project=project, kind="disk", disk_path="/var/lib/old.qcow2")
    template.save()
    (vm,) = compute.create_vms(member, project=project, template=template, name="old", hold=True)
    VMDisk.objects.filter(vm=vm, target="vda").delete()  # as such a VM was stored
    (vda,) = [d for d in compute.domain_spec(VirtualMachine.objects.get(pk=vm.pk)).disks if d.target == "vda"]
    assert vda.path == str(settings.NEPHELE_STATE_DIR / "disks" / vm.domain_name / "boot.qcow2")
    assert (vda.backing, vda.delete_on_release) == ("/var/lib/old.qcow2", True)


def test_a_boot_image_disk_boots_through_a_per_vm_overlay(
    make_sim_host: Any, member: Any, project: Any, template: Any, system_ds: Any, tmp_path: Any
) -> None:
    """Issue 12: every VM of a disk boot image had the boot image's file itself as its vda, read-write
    (so one tenant's guest wrote the disk the next tenant booted). Now each VM gets its own qcow2
    overlay (real qemu-img at PROLOG), the domain's vda is that overlay, and terminate removes it."""
    import xml.etree.ElementTree as ET

    from tests.factories import BootImageFactory

    host = make_sim_host()
    boot = str(tmp_path / "boot.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", boot, str(16 * MIB)], check=True)
    write_pattern(boot, "qcow2", 0, 0x5A)
    pristine = Path(boot).read_bytes()
    template.boot_image = BootImageFactory(project=project, kind="disk", disk_path=boot)
    template.save()
    vm = _vm(member, project, template)

    row = VMDisk.objects.get(vm=vm, target="vda")
    assert (row.clone, row.backing, row.volatile) == ("cow", boot, True) and row.path != boot
    assert row.path.startswith(system_ds.path)
    info = qemu_info(row.path)
    assert info["backing-filename"] == boot and info["backing-filename-format"] == "qcow2"
    xml = ET.fromstring(get_driver(host.driver, host.uri)._domain(vm.domain_name).XMLDesc(0))
    vda = [d for d in xml.iter("disk") if d.find("target").get("dev") == "vda"]  # type: ignore[union-attr]
    assert [d.find("source").get("file") for d in vda] == [row.path]  # type: ignore[union-attr]
    assert boot not in ET.tostring(xml, encoding="unicode")

    write_pattern(row.path, "qcow2", 0, 0xC3)  # the guest writes to its overlay …
    assert read_at(boot, "qcow2", 0, 4) == b"\x5a" * 4 and Path(boot).read_bytes() == pristine  # … not the boot disk
    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.DONE
    assert not os.path.exists(row.path) and Path(boot).read_bytes() == pristine


def test_host_side_preparation_is_idempotent_and_release_removes_only_volatile_files(tmp_path: Any) -> None:
    from compute.drivers.base import DiskSpec, DomainSpec
    from storage import hostops

    base = str(tmp_path / "base.qcow2")
    hostops.create_empty(base, "qcow2", 16 * MIB)
    overlay = DiskSpec(target="vda", path=str(tmp_path / "vm" / "disk.0.qcow2"), backing=base, backing_format="qcow2",
                       delete_on_release=True)  # fmt: skip
    empty = DiskSpec(target="vdb", path=str(tmp_path / "vm" / "disk.1.qcow2"), create_size_bytes=MIB,
                     delete_on_release=True)  # fmt: skip
    kept = DiskSpec(target="vdc", path=base)  # a volume or persistent image: exists, never removed
    dom = DomainSpec(name="d", title="d", uuid="0", vcpu=1, memory_mb=64, disks=(overlay, empty, kept))
    hostops.prepare_disks("test:///default", dom)
    write_pattern(overlay.path, "qcow2", 0, 0x33)
    hostops.prepare_disks("test:///default", dom)  # again (a retried PROLOG): nothing is remade
    assert read_at(overlay.path, "qcow2", 0, 2) == b"\x33\x33"
    hostops.release_disks("test:///default", dom, terminate=False)  # undeploy / stop keep them
    assert os.path.exists(overlay.path) and os.path.exists(empty.path)
    hostops.release_disks("test:///default", dom, terminate=True)
    hostops.release_disks("test:///default", dom, terminate=True)  # idempotent
    assert not os.path.exists(overlay.path) and not os.path.exists(empty.path) and os.path.exists(base)
    missing = DomainSpec(name="d", title="d", uuid="0", vcpu=1, memory_mb=64,
                         disks=(DiskSpec(target="vdd", path=str(tmp_path / "nope.qcow2")),))  # fmt: skip
    with pytest.raises(hostops.StorageError, match="does not exist"):
        hostops.prepare_disks("test:///default", missing)
