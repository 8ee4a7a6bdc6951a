"""OVF / OVA import: an OVA the test builds itself (qemu-img makes the streamOptimized VMDKs,
Python writes the OVF XML and the tar) becomes a VM template with the described CPUs, memory
and disks, each disk a qcow2 image. Hostile archives are refused with nothing left behind."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from compute.models import VMTemplate
from images import qemu
from images.models import Image, ImageState

from .helpers import make_image, qemu_img

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
SO = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"


def descriptor(disks: list[tuple[str, int]], vcpu: int = 2, memory_mb: int = 1024, name: str = "appliance") -> bytes:
    files = "".join(f'<File ovf:id="file{i}" ovf:href="{href}"/>' for i, (href, _c) in enumerate(disks))
    dsec = "".join(
        f'<Disk ovf:diskId="vmdisk{i}" ovf:fileRef="file{i}" ovf:capacity="{cap}" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="{SO}"/>'
        for i, (_h, cap) in enumerate(disks)
    )
    items = "".join(
        f"<Item><rasd:InstanceID>{10 + i}</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType>"
        f"<rasd:HostResource>ovf:/disk/vmdisk{i}</rasd:HostResource></Item>"
        for i in range(len(disks))
    )
    return (
        f'<?xml version="1.0"?><Envelope xmlns="{OVF_NS}" xmlns:ovf="{OVF_NS}" xmlns:rasd="{RASD_NS}">'
        f"<References>{files}</References><DiskSection><Info>disks</Info>{dsec}</DiskSection>"
        f'<VirtualSystem ovf:id="{name}"><Name>{name}</Name><VirtualHardwareSection>'
        f"<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>{vcpu}</rasd:VirtualQuantity></Item>"
        f"<Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{memory_mb}</rasd:VirtualQuantity></Item>"
        f"{items}</VirtualHardwareSection></VirtualSystem></Envelope>"
    ).encode()


def stream_vmdk(tmp: Path, name: str, size_mb: int) -> Path:
    raw = make_image(tmp / f"{name}.raw", "raw", f"{size_mb}M")
    with open(raw, "r+b") as f:
        f.write(name.encode() * 512)
    out = tmp / name
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(out))
    return out


def build_ova(path: Path, members: list[tuple[str, bytes | Path]], *, extra: Any = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, content in members:
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    return path


@pytest.fixture
def eager() -> Any:
    from portal.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_ova_import_creates_template_and_qcow2_disks(
    member_client, project, datastore, tmp_path, eager, django_capture_on_commit_callbacks
) -> None:
    d0, d1 = stream_vmdk(tmp_path, "system.vmdk", 16), stream_vmdk(tmp_path, "data.vmdk", 8)
    ova = build_ova(
        tmp_path / "app.ova",
        [
            ("app.ovf", descriptor([("system.vmdk", 16), ("data.vmdk", 8)], vcpu=2, memory_mb=1536)),
            ("system.vmdk", d0),
            ("data.vmdk", d1),
        ],
    )
    with django_capture_on_commit_callbacks(execute=True), open(ova, "rb") as f:
        r = member_client.post("/api/v1/images/import-ovf/", {"project": project.pk, "file": f}, format="multipart")
    assert r.status_code == 202, r.content
    tpl = VMTemplate.objects.get(pk=r.json()["template"])
    assert (tpl.name, tpl.vcpu, tpl.memory_mb, tpl.project_id) == ("appliance", 2, 1536, project.pk)
    disks = list(Image.objects.filter(import_detail__template=tpl.pk).order_by("import_detail__index"))
    assert [d.state for d in disks] == [ImageState.READY, ImageState.READY], [d.state_message for d in disks]
    assert [d.format for d in disks] == ["qcow2", "qcow2"]
    assert [d.virtual_size_bytes for d in disks] == [16 << 20, 8 << 20]
    assert qemu.info(disks[0].path, "qcow2").format == "qcow2"
    from storage.models import TemplateDisk

    assert [td.image_id for td in TemplateDisk.objects.filter(template=tpl).order_by("position")] == [
        d.pk for d in disks
    ]
    # only the two qcow2 files remain: archive and extracted members are gone
    assert sorted(p.name for p in Path(datastore.path).iterdir()) == sorted(f"{d.uuid}.qcow2" for d in disks)


def test_ovf_with_its_disks_sent_as_files(
    member, project, datastore, tmp_path, eager, django_capture_on_commit_callbacks
) -> None:
    from images.services import ovf

    d0 = stream_vmdk(tmp_path, "root.vmdk", 8)
    with django_capture_on_commit_callbacks(execute=True), open(d0, "rb") as disk:
        tpl = ovf.import_ovf(
            member,
            project=project,
            descriptor=io.BytesIO(descriptor([("root.vmdk", 8)], vcpu=1, memory_mb=256)),
            disks={"root.vmdk": disk},
        )
    assert (tpl.vcpu, tpl.memory_mb) == (1, 256)
    assert Image.objects.get(import_detail__template=tpl.pk).state == ImageState.READY


@pytest.mark.parametrize(
    "case,reason",
    [
        ("traversal", "is not a plain file at the top level"),
        ("symlink", "is not a plain file at the top level"),
        ("doctype", "declares a DTD or entities"),
        ("missing", "is not in the archive"),
        ("huge", "over the limit"),
    ],
)
def test_hostile_ova_is_refused_with_nothing_left(member_client, project, datastore, tmp_path, case, reason) -> None:
    d0 = stream_vmdk(tmp_path, "system.vmdk", 8)
    desc = descriptor([("system.vmdk", 8)])
    members: list[tuple[str, Any]] = [("app.ovf", desc), ("system.vmdk", d0)]
    extra = None
    if case == "traversal":
        members.append(("../../etc/cron.d/evil", b"* * * * * root id\n"))
    elif case == "symlink":

        def extra(tar: tarfile.TarFile) -> None:
            link = tarfile.TarInfo("passwd")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)

    elif case == "doctype":
        members[0] = (
            "app.ovf",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + desc[21:],
        )
    elif case == "missing":
        members = [("app.ovf", desc)]
    elif case == "huge":
        members[0] = ("app.ovf", descriptor([("system.vmdk", 100 * 1024 * 1024 * 1024)]))
    ova = build_ova(tmp_path / "evil.ova", members, extra=extra)
    with open(ova, "rb") as f:
        r = member_client.post("/api/v1/images/import-ovf/", {"project": project.pk, "file": f}, format="multipart")
    assert r.status_code == 400 and reason in r.json()["detail"], r.content
    assert not VMTemplate.objects.filter(name="appliance").exists() and not Image.objects.exists()
    assert list(Path(datastore.path).iterdir()) == []


def test_ova_disk_with_a_foreign_extent_ends_in_error(
    member_client, project, datastore, tmp_path, eager, django_capture_on_commit_callbacks
) -> None:
    evil = b'# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n'
    ova = build_ova(tmp_path / "x.ova", [("app.ovf", descriptor([("system.vmdk", 1)])), ("system.vmdk", evil)])
    with django_capture_on_commit_callbacks(execute=True), open(ova, "rb") as f:
        r = member_client.post("/api/v1/images/import-ovf/", {"project": project.pk, "file": f}, format="multipart")
    assert r.status_code == 202
    img = Image.objects.get()
    assert img.state == ImageState.ERROR and "references other files (/etc/passwd)" in img.state_message
    assert list(Path(datastore.path).iterdir()) == []
