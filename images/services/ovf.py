"""OVF / OVA import: read the descriptor, make one qcow2 image per described disk and a VM
template with the described CPUs, memory and disks.

Nothing is ever extracted by a member's name: the archive is stored as ``<uuid>.ova`` in the
image datastore, each disk member is streamed (1 MiB pieces) to ``<image uuid>.import`` next
to it, checked like an upload (format probed then pinned, no backing / data file / foreign
extents, virtual size within the limit) and converted to ``<image uuid>.qcow2`` by the task
``images.import_disk``. When the import's last disk is READY the disks join the template in
the descriptor's order (``storage.vmdisks.add_template_disk``).
"""

from __future__ import annotations

import math
import os
import re
import tarfile
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from compute.models import MAX_MEMORY_MB, MAX_VCPU, VMTemplate
from monitoring.audit import record_action
from portal.errors import InvalidInput

from .. import qemu
from ..models import Image, ImageState, ImageType
from .core import (
    GiB,
    file_path,
    image_datastore,
    max_virtual_bytes,
    new_image,
    project_for,
    remove_files,
)

OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
MAX_DESCRIPTOR = 4 << 20
MAX_DISKS = 16
PIECE = 1 << 20
_UNITS = re.compile(r"^\s*byte\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$", re.IGNORECASE)
_HREF = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


@dataclass(frozen=True)
class OvfDisk:
    """One disk the descriptor describes: the file (member) holding it and its capacity."""

    href: str
    capacity_bytes: int
    format_url: str = ""


@dataclass(frozen=True)
class OvfDescriptor:
    name: str
    vcpu: int
    memory_mb: int
    disks: tuple[OvfDisk, ...]


@dataclass(frozen=True)
class DiskOrder:
    """What ``images.import_disk`` needs: where to read the disk from and where it goes."""

    archive: str
    member: str
    file: str
    target: str
    datastore_path: str
    max_virtual_bytes: int


def _units(value: str | None, default_power: tuple[int, int] = (2, 0)) -> int:
    if not value:
        return int(default_power[0] ** default_power[1])
    m = _UNITS.match(value)
    if not m:
        raise InvalidInput(f"OVF allocation unit {value!r} is not understood", field="file")
    return int(m.group(1)) ** int(m.group(2)) if m.group(1) else 1


def parse_descriptor(data: bytes) -> OvfDescriptor:
    """Parse an OVF envelope (no DTDs or entities accepted) into CPUs, memory and disks."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InvalidInput("OVF descriptor declares a DTD or entities: refused", field="file")
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD / entities (checked above)
    except ET.ParseError as exc:
        raise InvalidInput(f"OVF descriptor is not valid XML: {exc}", field="file") from exc
    files = {f.get(f"{OVF}id"): f.get(f"{OVF}href", "") for f in root.iter(f"{OVF}File")}
    disks: dict[str, OvfDisk] = {}
    for d in root.iter(f"{OVF}Disk"):
        ref = d.get(f"{OVF}fileRef")
        href = files.get(ref, "")
        if not href or not _HREF.match(href):
            raise InvalidInput(f"OVF disk {d.get(f'{OVF}diskId')} names no plain file ({href!r})", field="file")
        try:
            cap = int(d.get(f"{OVF}capacity", "0")) * _units(d.get(f"{OVF}capacityAllocationUnits"))
        except ValueError as exc:
            raise InvalidInput("OVF disk capacity is not a number", field="file") from exc
        disks[f"ovf:/disk/{d.get(f'{OVF}diskId')}"] = OvfDisk(href, cap, d.get(f"{OVF}format", ""))
    system = next(root.iter(f"{OVF}VirtualSystem"), None)
    if system is None:
        raise InvalidInput("OVF descriptor has no VirtualSystem", field="file")
    name_el = system.find(f"{OVF}Name")
    name = (name_el.text if name_el is not None and name_el.text else system.get(f"{OVF}id", "")) or "imported"
    vcpu, memory_mb, ordered = 1, 512, []
    for item in system.iter(f"{OVF}Item"):
        kind = (item.findtext(f"{RASD}ResourceType") or "").strip()
        qty = (item.findtext(f"{RASD}VirtualQuantity") or "0").strip()
        if kind == "3":
            vcpu = int(qty)
        elif kind == "4":
            unit = _units(item.findtext(f"{RASD}AllocationUnits"), (2, 20))
            memory_mb = int(qty) * unit // (1 << 20)
        elif kind == "17":
            res = (item.findtext(f"{RASD}HostResource") or "").strip()
            if res.startswith("/disk/"):
                res = "ovf:" + res
            if res in disks:
                ordered.append(disks[res])
    if not ordered:
        ordered = list(disks.values())
    if not 1 <= vcpu <= MAX_VCPU:
        raise InvalidInput(f"OVF describes {vcpu} CPUs; between 1 and {MAX_VCPU} are accepted", field="file")
    if not 16 <= memory_mb <= MAX_MEMORY_MB:
        raise InvalidInput(f"OVF describes {memory_mb} MiB of memory; 16 to {MAX_MEMORY_MB} are accepted", field="file")
    if not ordered or len(ordered) > MAX_DISKS:
        raise InvalidInput(f"OVF must describe 1 to {MAX_DISKS} disks", field="file")
    return OvfDescriptor(_safe_name(name), vcpu, memory_mb, tuple(ordered))


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:50]
    return cleaned or "imported"


def _copy_stream(src: IO[bytes], dst_path: str, limit: int | None = None) -> int:
    """Stream ``src`` to ``dst_path`` in 1 MiB pieces (all-zero pieces become holes)."""
    total = 0
    with open(dst_path, "wb") as out:
        while block := src.read(PIECE):
            total += len(block)
            if limit is not None and total > limit:
                raise InvalidInput(f"the file is larger than {limit} bytes", field="file")
            if block.count(0) == len(block):
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
        out.truncate(total)
    return total


def _members(archive: str) -> dict[str, tarfile.TarInfo]:
    """The regular-file members of an OVA by name; links, devices, absolute or ``..`` names refuse it."""
    try:
        tar = tarfile.open(archive, mode="r:")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(f"not an OVA (tar) archive: {exc}", field="file") from exc
    with tar:
        out: dict[str, tarfile.TarInfo] = {}
        for m in tar.getmembers():
            if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/") or "/" in m.name.strip("./"):
                raise InvalidInput(f"OVA member {m.name!r} is not a plain file at the top level: refused", field="file")
            out[os.path.basename(m.name)] = m
        return out


@transaction.atomic
def import_ova(actor: User, *, project: Any, stream: IO[bytes], datastore: Any = None, name: str = "") -> VMTemplate:
    """Import an OVA read from ``stream``: store it in the datastore, parse its descriptor,
    create the template and one CONVERTING image per disk (tasks convert them)."""
    proj = project_for(actor, project)
    ds = image_datastore(datastore)
    archive = os.path.join(os.path.realpath(ds.path), f"{uuid.uuid4()}.ova")
    try:
        _copy_stream(stream, archive)
        members = _members(archive)
        ovf_names = [n for n in members if n.endswith(".ovf")]
        if len(ovf_names) != 1:
            raise InvalidInput("an OVA holds exactly one .ovf descriptor", field="file")
        ovf_member = members[ovf_names[0]]
        if ovf_member.size > MAX_DESCRIPTOR:
            raise InvalidInput(f"OVF descriptor is larger than {MAX_DESCRIPTOR} bytes", field="file")
        with tarfile.open(archive, mode="r:") as tar:
            f = tar.extractfile(ovf_member)
            assert f is not None
            desc = parse_descriptor(f.read(MAX_DESCRIPTOR))
        for disk in desc.disks:
            if disk.href not in members:
                raise InvalidInput(f"OVF disk file {disk.href} is not in the archive", field="file")
        return _create(actor, proj, ds, desc, name, archive=archive, files={})
    except BaseException:
        remove_files(archive)
        raise


@transaction.atomic
def import_ovf(
    actor: User,
    *,
    project: Any,
    descriptor: IO[bytes],
    disks: dict[str, IO[bytes]],
    datastore: Any = None,
    name: str = "",
) -> VMTemplate:
    """Import an .ovf descriptor with its disk files (``disks``: the names the descriptor uses
    → streams). Each file is stored under a uuid name in the datastore."""
    proj = project_for(actor, project)
    ds = image_datastore(datastore)
    desc = parse_descriptor(descriptor.read(MAX_DESCRIPTOR + 1)[:MAX_DESCRIPTOR])
    by_name = {os.path.basename(k): v for k, v in disks.items()}
    saved: dict[str, str] = {}
    try:
        for disk in desc.disks:
            if disk.href not in by_name:
                raise InvalidInput(f"OVF disk file {disk.href} was not sent", field="disks")
            path = os.path.join(os.path.realpath(ds.path), f"{uuid.uuid4()}.import")
            saved[disk.href] = path
            _copy_stream(by_name[disk.href], path)
        return _create(actor, proj, ds, desc, name, archive="", files=saved)
    except BaseException:
        remove_files(*saved.values())
        raise


def _create(
    actor: User, proj: Any, ds: Any, desc: OvfDescriptor, name: str, *, archive: str, files: dict[str, str]
) -> VMTemplate:
    limit = max_virtual_bytes(proj)
    for disk in desc.disks:
        if disk.capacity_bytes > limit:
            raise InvalidInput(
                f"OVF disk {disk.href} has a capacity of {disk.capacity_bytes} bytes, over the limit of {limit}",
                field="file",
            )
    tpl = VMTemplate(
        project=proj,
        owner=actor,
        name=_safe_name(name) if name else desc.name,
        vcpu=desc.vcpu,
        memory_mb=desc.memory_mb,
        disk_gb=max(1, math.ceil(desc.disks[0].capacity_bytes / GiB)),
        description="imported from an OVF descriptor",
    )
    try:
        tpl.full_clean()
    except ValidationError as exc:
        field, msgs = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {msgs[0]}", field=field) from exc
    tpl.save()
    record_action(actor, tpl, "create", project=proj, source="ovf")
    from .. import tasks

    pks = []
    for i, disk in enumerate(desc.disks):
        img = new_image(
            actor,
            proj,
            ds,
            name=f"{tpl.name}-disk{i}"[:63],
            type=ImageType.OS if i == 0 else ImageType.DATABLOCK,
            format="qcow2",
            state=ImageState.CONVERTING,
            state_message=f"importing {disk.href}",
            source_name=disk.href,
            import_detail={
                "archive": archive,
                "member": disk.href,
                "file": files.get(disk.href, ""),
                "template": tpl.pk,
                "index": i,
                "capacity": disk.capacity_bytes,
            },
        )
        img.path = file_path(img, "qcow2")
        img.save(update_fields=["path"])
        record_action(actor, img, "import", template=tpl.pk, member=disk.href)
        pks.append(img.pk)
    for pk in pks:
        transaction.on_commit(partial(tasks.import_disk.delay, pk))
    return tpl


# --- task side ------------------------------------------------------------------------------


def disk_order(image_id: int) -> DiskOrder | None:
    img = Image.objects.select_related("datastore", "project").filter(pk=image_id, state=ImageState.CONVERTING).first()
    if img is None or not img.import_detail:
        return None
    d = img.import_detail
    return DiskOrder(
        d.get("archive", ""),
        d.get("member", ""),
        d.get("file", ""),
        img.path,
        os.path.realpath(img.datastore.path),
        max_virtual_bytes(img.project),
    )


def extract_disk(image_id: int, order: DiskOrder) -> tuple[str, str]:
    """Stream the disk member to ``<target>.import`` (inside the datastore) and check it.
    Returns that file and its (pinned) format."""
    src = order.target.removesuffix(".qcow2") + ".import"
    if order.file:
        if os.path.dirname(os.path.realpath(order.file)) != order.datastore_path:
            raise ValueError("disk file is outside the datastore")
        os.replace(order.file, src)
    else:
        with tarfile.open(order.archive, mode="r:") as tar:
            member = _members(order.archive)[order.member]
            f = tar.extractfile(member)
            if f is None:
                raise ValueError(f"{order.member} is not a file")
            _copy_stream(f, src)
    try:
        fmt, _info = qemu.inspect(src, max_virtual_bytes=order.max_virtual_bytes)
    except qemu.QemuImgError:
        remove_files(src)
        raise
    if fmt == "iso":
        fmt = "raw"
    return src, fmt


def finish_archive(archive: str) -> None:
    """Remove the stored OVA once none of its disks is still being imported."""
    if archive and not Image.objects.filter(state=ImageState.CONVERTING, import_detail__archive=archive).exists():
        remove_files(archive)


@transaction.atomic
def attach_to_template(img: Image) -> None:
    """When every disk of the import is READY, add them to the template in descriptor order."""
    from storage import vmdisks

    tid = img.import_detail.get("template")
    tpl = VMTemplate.objects.select_for_update().filter(pk=tid).first()
    if tpl is None:
        return
    disks = list(Image.objects.select_for_update().filter(import_detail__template=tid).order_by("pk"))
    if any(d.state != ImageState.READY for d in disks) or any(d.import_detail.get("attached") for d in disks):
        return
    for d in sorted(disks, key=lambda d: d.import_detail.get("index", 0)):
        cap = int(d.import_detail.get("capacity", 0))
        vmdisks.add_template_disk(tpl, d, size_bytes=cap if 0 < cap <= d.virtual_size_bytes else 0)
        d.import_detail = {**d.import_detail, "attached": True}
        d.save(update_fields=["import_detail"])
    record_action(None, tpl, "import_done", project=tpl.project, disks=len(disks))
