"""Volumes hot-attached to a guest running on the real QEMU host (libvirtd + TCG).

The tiny test guest prints ``NEPHELE-PARTITIONS <names>`` (its /proc/partitions) at boot and
whenever it changes; the test attaches a volume through the API while the guest runs, reads
the new device on the serial console, grows it, detaches it and sees it go. The driver's
cold attach / detach (definition only) is checked on a defined domain that is not running.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as dj_settings

from compute.drivers.base import DiskSpec, DomainSpec
from compute.drivers.registry import get_driver
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from storage import hostops
from storage.models import Volume
from tests.conftest import client_for, wait_for

from .test_real_host import GUEST, _serial, real_host_ready  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("real_host_ready")]
MIB = 1024**2


def _partitions(vm: VirtualMachine) -> list[set[str]]:
    return [set(m.split()) for m in re.findall(r"NEPHELE-PARTITIONS ?([^\r\n]*)", _serial(vm))]


def test_driver_cold_attach_and_detach_on_a_defined_domain(tmp_path: Path) -> None:
    drv = get_driver("libvirt", "qemu:///system")
    assert drv.supports("hotplug_disk")
    name = f"nephele-test-cold-{uuid.uuid4().hex[:6]}"
    drv.define(DomainSpec(name=name, title="cold", uuid=str(uuid.uuid4()), vcpu=1, memory_mb=64,
                          kernel=str(GUEST / "vmlinuz")))  # fmt: skip
    disk = DiskSpec(target="vdb", path=str(tmp_path / "v.qcow2"), format="qcow2", serial="nephele-vol-0")
    hostops.create_empty(disk.path, "qcow2", 8 * MIB)
    try:
        drv.attach_disk(name, disk, live=True)  # not running: the definition only
        drv.attach_disk(name, disk, live=True)  # idempotent
        xml = drv._domain(name).XMLDesc(0)
        assert xml.count(disk.path) == 1 and "nephele-vol-0" in xml
        drv.detach_disk(name, "vdb", live=False)
        drv.detach_disk(name, "vdb", live=False)  # idempotent
        assert disk.path not in drv._domain(name).XMLDesc(0)
    finally:
        drv.undefine(name)


def test_volume_hot_attached_to_a_running_guest_appears_in_its_partitions(
    agent: Any, admin_user: Any, member: Any, project: Any, settings: Any
) -> None:
    admin = client_for(admin_user)
    resp = admin.post("/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"},
                      format="json")  # fmt: skip
    assert resp.status_code == 201, resp.content
    wait_for(lambda: Host.objects.filter(pk=resp.json()["id"], state="MONITORED").first(), timeout=60)
    image = admin.post(
        "/api/v1/boot-images/",
        {"project": project.pk, "name": "tiny-guest", "kind": "kernel", "public": True,
         "kernel_path": str(GUEST / "vmlinuz"), "initrd_path": str(GUEST / "initrd.img"),
         "cmdline": "console=ttyS0 quiet nephele.marker=vm-{vm_name} nephele.heartbeat=1"},
        format="json",
    )  # fmt: skip
    api = client_for(member)
    tpl = api.post("/api/v1/templates/", {"project": project.pk, "name": "tiny", "vcpu": 1, "memory_mb": 256,
                                          "boot_image": image.json()["id"], "hypervisor": "qemu"}, format="json")  # fmt: skip
    assert tpl.status_code == 201, tpl.content
    vol = api.post("/api/v1/volumes/", {"project": project.pk, "name": "hot", "size_bytes": 64 * MIB}, format="json")
    assert vol.status_code == 202, vol.content
    vid = vol.json()["id"]
    wait_for(lambda: Volume.objects.get(pk=vid).state == "available")

    created = api.post("/api/v1/vms/", {"name": "guest", "project": project.pk, "template": tpl.json()["id"]},
                       format="json")  # fmt: skip
    pk = created.json()[0]["id"]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    try:
        wait_for(lambda: _partitions(vm), timeout=180, interval=1)
        before = _partitions(vm)[-1]

        resp = api.post(f"/api/v1/volumes/{vid}/attach/", {"vm": pk}, format="json")
        assert resp.status_code == 202, resp.content
        assert resp.json()["state"] == "attaching"  # live: the agent hotplugs it
        target = wait_for(lambda: (v := Volume.objects.get(pk=vid)).state == "in-use" and v.target, timeout=60)
        assert target not in before
        wait_for(lambda: target in _partitions(vm)[-1], timeout=120, interval=1)

        assert api.post(f"/api/v1/volumes/{vid}/grow/", {"size_bytes": 128 * MIB}, format="json").status_code == 202
        wait_for(lambda: Volume.objects.get(pk=vid).size_bytes == 128 * MIB and not Volume.objects.get(pk=vid).operation,
                 timeout=60)  # fmt: skip
        assert hostops.virtual_size(Volume.objects.get(pk=vid).path, "qcow2") == 128 * MIB  # blockResize, live
        snap = api.post(f"/api/v1/volumes/{vid}/snapshot/", {"name": "s"}, format="json")
        assert snap.status_code == 409 and "power it off" in snap.json()["detail"]

        assert api.post(f"/api/v1/volumes/{vid}/detach/", format="json").status_code == 202
        wait_for(lambda: Volume.objects.get(pk=vid).state == "available", timeout=60)
        wait_for(lambda: target not in _partitions(vm)[-1], timeout=120, interval=1)
    finally:
        api.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.DONE, timeout=90)
    assert Path(Volume.objects.get(pk=vid).path).exists()  # the volume outlives the VM
    assert Path(dj_settings.NEPHELE_STATE_DIR).exists()


def test_guest_boots_from_kernel_images_with_an_overlay_disk(
    agent: Any, admin_user: Any, member: Any, project: Any, tmp_path: Path
) -> None:
    """Kernel and ramdisk images and an OS image from the repository: the guest boots with its
    kernel from the template's disks and sees its copy-on-write overlay as vda; terminate
    removes the overlay and leaves the image as it was."""
    import hashlib
    import shutil

    from images import services as images
    from storage.models import Datastore, VMDisk

    ds_path = tmp_path / "images"
    ds_path.mkdir()
    ds = Datastore.objects.create(name="img", kind="image", path=str(ds_path), free_bytes=10**12)
    for name in ("vmlinuz", "initrd.img"):
        shutil.copy(GUEST / name, ds_path / name)
    kernel = images.register_file(member, project=project, name="kernel", datastore=ds,
                                  path=str(ds_path / "vmlinuz"), type="kernel")  # fmt: skip
    initrd = images.register_file(member, project=project, name="initrd", datastore=ds,
                                  path=str(ds_path / "initrd.img"), type="ramdisk")  # fmt: skip
    hostops.create_empty(str(ds_path / "os.qcow2"), "qcow2", 32 * MIB)
    os_image = images.register_file(member, project=project, name="os", datastore=ds, path=str(ds_path / "os.qcow2"))
    digest = hashlib.sha256(Path(os_image.path).read_bytes()).hexdigest()

    admin = client_for(admin_user)
    host = admin.post("/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"},
                      format="json").json()  # fmt: skip
    wait_for(lambda: Host.objects.filter(pk=host["id"], state="MONITORED").first(), timeout=60)
    api = client_for(member)
    tpl = api.post("/api/v1/templates/", {"project": project.pk, "name": "from-images", "vcpu": 1, "memory_mb": 256,
                                          "hypervisor": "qemu"}, format="json").json()  # fmt: skip
    for body in (
        {"image": kernel.pk, "cmdline": "console=ttyS0 quiet nephele.marker=vm-{vm_name} nephele.heartbeat=1"},
        {"image": initrd.pk},
        {"image": os_image.pk},
    ):
        assert api.post("/api/v1/template-disks/", {"template": tpl["id"], **body}, format="json").status_code == 201
    pk = api.post("/api/v1/vms/", {"name": "g", "project": project.pk, "template": tpl["id"]}, format="json").json()[0][
        "id"
    ]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    overlay = VMDisk.objects.get(vm=vm, target="vda").path
    try:
        wait_for(lambda: f"NEPHELE-MARKER vm-{pk}" in _serial(vm), timeout=180, interval=1)
        wait_for(lambda: _partitions(vm) and "vda" in _partitions(vm)[-1], timeout=60, interval=1)
        assert Path(overlay).exists()
    finally:
        api.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.DONE, timeout=90)
    assert not Path(overlay).exists()
    assert hashlib.sha256(Path(os_image.path).read_bytes()).hexdigest() == digest
