"""The storage manager's part of a VM: its disks, made from its template's disks and volumes.

ORM side only; ``storage.hostops`` makes and removes the files on the host (agent side).

- ``on_vms_created`` (called by ``compute.services.create.create_vms`` in its transaction)
  checks the template's images against the creator's rights at that moment (a revoked share
  makes no new copy), then gives each new VM a ``VMDisk`` per template disk: a copy-on-write
  overlay (or a full copy, per the system datastore's ``clone_mode``) of a non-persistent
  image, the persistent image itself (marked USED: one VM at a time), an empty volatile disk,
  a CD-ROM, or its kernel / initrd; a compute boot image of kind disk gets a per-VM overlay
  as vda (the boot image's file is never attached itself).
- ``disk_specs`` (called by ``domain_spec``) lists them as ``DiskSpec`` values, so it is the one
  place that lists a VM's image and volume disks (the context CD-ROM is appended by compute).
- ``on_vm_done`` (called when a VM reaches DONE) releases its volumes through the volume
  service (``release_volumes_of``: audit row and event per volume), gives persistent images
  back and removes volatile files that no EPILOG removed.

Quota: a VM's disks are covered by ``system_disk_gb``, which ``create_vms`` consumes from the
template's ``disk_gb``; template disks add nothing to it (the template's ``disk_gb`` is the
declared budget; ``add_template_disk`` keeps volatile disks within it). Volumes have their
own quotas (``volumes``, ``volume_gb``).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from portal.errors import Conflict, InvalidInput, NotFound
from specs import DiskSpec

from .models import GIB, CloneMode, Datastore, DatastoreKind, DatastoreState, TemplateDisk, VMDisk, VMDiskKind
from .states import VMDiskState as DS

# disks the domain carries (a disk being attached is added by its task, not by a redefinition)
IN_DOMAIN = (DS.ATTACHED, DS.DETACHING, DS.SAVING)
MAX_TEMPLATE_DISKS = 8


def image_file(image: Any) -> str:
    """The absolute path of an image's file (``Image.path`` is absolute; a relative one is in its datastore)."""
    path = str(image.path)
    return path if os.path.isabs(path) else os.path.join(image.datastore.path, path)


def _disk_format(image: Any) -> str:
    return "raw" if image.format in ("iso", "") else str(image.format)


def system_datastore(cluster: Any = None, size_bytes: int = 0) -> Datastore | None:
    """The system datastore new VM disks and volumes go to: the datastore manager's pick (most
    free space with room, reachable from ``cluster``), else the first ready system datastore
    reachable from it (capacity not monitored yet); None when the cloud has none (then the
    files go to ``NEPHELE_STATE_DIR/disks``)."""
    from .services.datastores import pick_datastore

    cluster_id = getattr(cluster, "pk", None)
    try:
        return pick_datastore(DatastoreKind.SYSTEM, cluster_id=cluster_id, need_bytes=size_bytes)
    except Conflict:
        pass
    qs = Datastore.objects.filter(kind=DatastoreKind.SYSTEM, state=DatastoreState.READY).order_by("pk")
    for ds in qs.prefetch_related("clusters"):
        ids = {c.pk for c in ds.clusters.all()}
        if not ids or cluster_id is None or cluster_id in ids:
            return ds
    return None


def vm_dir(vm: Any, datastore: Datastore | None) -> str:
    """Where a VM's own disk files live: ``<system datastore>/<domain name>/``."""
    root = datastore.path if datastore is not None else str(settings.NEPHELE_STATE_DIR / "disks")
    return os.path.join(root, vm.domain_name)


def targets_in_use(vm: Any) -> set[str]:
    used = set(VMDisk.objects.filter(vm=vm).exclude(target="").values_list("target", flat=True))
    if vm.boot_image_id and vm.boot_image and vm.boot_image.disk_path:
        used.add("vda")  # the compute BootImage's disk
    return used


def next_target(used: Iterable[str], cdrom: bool = False) -> str:
    """The first free guest device: vda, vdb … for disks; sdb, sdc … for CD-ROMs (the context
    CD-ROM keeps hdc / sda)."""
    taken = set(used)
    prefix, letters = ("sd", string.ascii_lowercase[1:]) if cdrom else ("vd", string.ascii_lowercase)
    for letter in letters:
        if f"{prefix}{letter}" not in taken:
            return f"{prefix}{letter}"
    raise Conflict("the VM has no free disk slot left", field="target")


# --------------------------------------------------------------------------------------------
# creation (inside create_vms' transaction)
# --------------------------------------------------------------------------------------------
def _lock_persistent(images: list[Any], count: int) -> None:
    """Persistent images: one VM at a time. Lock their rows, refuse when taken, mark them USED."""
    from images.models import Image, ImageState

    from .hooks import set_image_in_use

    if not images:
        return
    if count > 1:
        raise InvalidInput("a template with a persistent image makes one VM at a time", field="count")
    for img in Image.objects.select_for_update().filter(pk__in=[i.pk for i in images]).order_by("pk"):
        users = vms_using_image(img.pk)
        if users:
            raise Conflict(f"persistent image {img.name} is in use by VM {users[0].name}", field="template")
        if img.state != ImageState.READY:
            raise Conflict(f"image {img.name} is {img.state}, not ready", field="template")
        set_image_in_use(img.pk, True)


def _check_images_usable(actor: Any, tdisks: list[TemplateDisk]) -> None:
    """The template's images, checked against the VM creator's rights now (time of use): an
    image whose share was revoked since the template disk was made gives no new copy."""
    from images.models import Image

    if actor is None:  # the system (no one's rights to check)
        return
    wanted = {td.image_id for td in tdisks if td.image_id is not None}
    usable = set(Image.objects.restrict(actor, "view").filter(pk__in=wanted).values_list("pk", flat=True))
    for td in tdisks:
        if td.image_id is not None and td.image_id not in usable:
            raise Conflict(
                f"disk {td.position} of the template uses an image that is not available to you (no longer shared?)",
                field="template",
            )


def on_vms_created(actor: Any, vms: list[Any], template: Any) -> None:
    """Give each new VM its disks from ``template``'s disks (same transaction as the VMs); a VM
    made without a template (from an image: ``on_image_requested``) gets none here."""
    if template is None:
        boot = _boot_disk_file(vms[0]) if vms else ""
        if boot:
            _give_disks(actor, vms, [], None, boot)
        return
    tdisks = list(TemplateDisk.objects.filter(template=template).select_related("image__datastore"))
    _give_disks(actor, vms, tdisks, template.cluster, _boot_disk_file(vms[0]) if vms else "")


def on_image_requested(actor: Any, vms: list[Any], image: Any, size_bytes: int = 0) -> None:
    """VMs created from an image without a template (compute's ``image_requested`` hook): each
    gets a copy of ``image`` as its first disk, grown to ``size_bytes`` when that is larger —
    the disk a one-disk template would give. The image is resolved with the creator's rights
    now; one that is not theirs to see is a 404 naming ``image``."""
    from images.models import Image

    pk = getattr(image, "pk", image)
    found = Image.objects.restrict(actor, "view").select_related("datastore").filter(pk=pk).first()
    if found is None:
        raise NotFound("image not found", field="image")
    cluster = vms[0].cluster if vms else None
    _give_disks(actor, vms, [TemplateDisk(image=found, size_bytes=size_bytes, position=0)], cluster, "", field="image")


def bootable_images(actor: Any) -> list[tuple[int, str]]:
    """The ready OS images ``actor`` may boot a VM from, by name (the create form's choices)."""
    from images.models import Image, ImageState, ImageType

    rows = (
        Image.objects.restrict(actor, "view")
        .filter(type=ImageType.OS, state__in=[ImageState.READY, ImageState.USED])
        .order_by("name", "pk")
        .values_list("pk", "name", "virtual_size_bytes")[:500]
    )
    return [(pk, f"{name} ({-(-size // GIB)} GiB)") for pk, name, size in rows]


def _give_disks(actor: Any, vms: list[Any], tdisks: list[TemplateDisk], cluster: Any, boot: str,
                field: str = "template") -> None:  # fmt: skip
    from images.models import ImageState, ImageType

    if not tdisks and not boot:
        return
    _check_images_usable(actor, tdisks)
    for td in tdisks:
        img = td.image
        if img is not None and img.state not in (ImageState.READY, ImageState.USED):
            raise Conflict(f"image {img.name} is {img.state}, not ready", field=field)
    _lock_persistent(
        [td.image for td in tdisks if td.image and td.image.persistent and td.image.type in _WRITABLE], len(vms)
    )
    total = sum(max(td.size_bytes, td.image.virtual_size_bytes if td.image else 0) for td in tdisks)
    ds = system_datastore(cluster, total)
    rows = []
    for vm in vms:
        used = targets_in_use(vm)
        if boot:
            rows.append(_boot_overlay(vm, boot, ds))
        for i, td in enumerate(tdisks):
            row = _vm_disk(vm, td, i, ds, used, ImageType)
            if row.target:
                used.add(row.target)
            rows.append(row)
    VMDisk.objects.bulk_create(rows)


_WRITABLE = ("os", "datablock")
# A compute boot image's disk carries no format; the domain always declared it qcow2, so the
# overlay pins its backing to that (a format is never probed: storage/hostops.py).
BOOT_DISK_FORMAT = "qcow2"


def _boot_disk_file(vm: Any) -> str:
    """The file of ``vm``'s compute boot image of kind disk ("" when it boots otherwise)."""
    img = vm.boot_image if vm.boot_image_id else None
    return str(img.disk_path) if img is not None and img.disk_path else ""


def _boot_overlay(vm: Any, boot: str, ds: Datastore | None) -> VMDisk:
    """vda of a VM booted from a compute boot image's disk: a per-VM copy-on-write overlay on the
    boot image's file (made at PROLOG by ``storage.hostops``, removed at terminate), so no guest
    ever writes the boot image itself (issue 12: VMs of many projects shared one writable file)."""
    return VMDisk(
        vm=vm, datastore=ds, kind=VMDiskKind.DISK, target="vda", path=os.path.join(vm_dir(vm, ds), "boot.qcow2"),
        format="qcow2", backing=boot, backing_format=BOOT_DISK_FORMAT, clone=CloneMode.COW, volatile=True,
    )  # fmt: skip


def _vm_disk(vm: Any, td: TemplateDisk, index: int, ds: Datastore | None, used: set[str], types: Any) -> VMDisk:
    img = td.image
    base = os.path.join(vm_dir(vm, ds), f"disk.{index}")
    if img is None:  # an empty volatile disk
        return VMDisk(
            vm=vm, datastore=ds, kind=VMDiskKind.DISK, target=next_target(used), path=f"{base}.qcow2",
            format="qcow2", clone="empty", size_bytes=td.size_bytes, volatile=True,
        )  # fmt: skip
    if img.type in (types.KERNEL, types.RAMDISK):
        kind = VMDiskKind.KERNEL if img.type == types.KERNEL else VMDiskKind.INITRD
        cmdline = td.cmdline.replace("{vm_name}", str(vm.pk)) if kind == VMDiskKind.KERNEL else ""
        return VMDisk(vm=vm, image=img, kind=kind, path=image_file(img), format="raw", cmdline=cmdline, volatile=False)
    if img.type in (types.CDROM, types.CONTEXT):
        return VMDisk(
            vm=vm, image=img, kind=VMDiskKind.CDROM, target=next_target(used, cdrom=True), path=image_file(img),
            format=_disk_format(img), volatile=False,
        )  # fmt: skip
    size = max(td.size_bytes, img.virtual_size_bytes)
    if img.persistent:
        return VMDisk(
            vm=vm, image=img, kind=VMDiskKind.DISK, target=next_target(used), path=image_file(img),
            format=_disk_format(img), size_bytes=size, persistent=True, volatile=False,
        )  # fmt: skip
    clone = ds.clone_mode if ds is not None else CloneMode.COW
    return VMDisk(
        vm=vm, image=img, datastore=ds, kind=VMDiskKind.DISK, target=next_target(used), path=f"{base}.qcow2",
        format="qcow2", backing=image_file(img), backing_format=_disk_format(img), clone=clone,
        size_bytes=size, volatile=True,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the domain's view
# --------------------------------------------------------------------------------------------
def disk_spec(d: VMDisk) -> DiskSpec:
    """One VM disk as the driver and ``storage.hostops`` see it."""
    cdrom = d.kind == VMDiskKind.CDROM
    return DiskSpec(
        target=d.target,
        path=d.path,
        format=d.format,
        device="cdrom" if cdrom else "disk",
        bus="sata" if d.target.startswith("sd") else "virtio",
        readonly=cdrom,
        serial=f"nephele-vol-{d.volume_id}" if d.volume_id else "",
        backing=d.backing if d.clone == CloneMode.COW else "",
        backing_format=d.backing_format,
        copy_from=d.backing if d.clone == CloneMode.COPY else "",
        create_size_bytes=d.size_bytes if d.clone in ("cow", "copy", "empty") else 0,
        delete_on_release=d.volatile,
    )


def _vm_disks(vm: Any) -> list[VMDisk]:
    """Every disk row of the VM: prefetched by ``prefetch`` when the specs of many VMs are built
    together, else one query."""
    prefetched = getattr(vm, "spec_disks", None)
    return list(prefetched) if prefetched is not None else list(VMDisk.objects.filter(vm=vm).order_by("pk"))


def prefetch(vms: list[Any]) -> None:
    """``compute.hooks.specs_prefetch``: the disk rows of all ``vms`` in one query."""
    from django.db.models import Prefetch, prefetch_related_objects

    prefetch_related_objects(vms, Prefetch("disks", queryset=VMDisk.objects.order_by("pk"), to_attr="spec_disks"))


def disk_specs(vm: Any) -> list[DiskSpec]:
    """The VM's disks by target: its boot image's overlay (vda), image copies and volumes."""
    rows = [d for d in _vm_disks(vm) if d.kind in (VMDiskKind.DISK, VMDiskKind.CDROM) and d.state in IN_DOMAIN]
    boot = _boot_disk_file(vm)
    if boot and not any(d.target == "vda" for d in rows):
        # a VM made before boot disks had their row: its overlay in the default place (stable,
        # as no datastore is chosen for it), still never the boot image's file itself
        rows.append(_boot_overlay(vm, boot, None))
    return [disk_spec(d) for d in sorted(rows, key=lambda d: (len(d.target), d.target))]


def boot_files(vm: Any) -> tuple[str, str]:
    """Kernel and initrd paths from the VM's kernel / ramdisk images; ("", "") when it has none."""
    files = {d.kind: d.path for d in _vm_disks(vm) if d.kind in (VMDiskKind.KERNEL, VMDiskKind.INITRD)}
    return files.get(VMDiskKind.KERNEL, ""), files.get(VMDiskKind.INITRD, "")


def boot(vm: Any) -> tuple[str, str, str] | None:
    """``compute.hooks.boot_files``: kernel, initrd and command line from the VM's kernel images."""
    kernel, initrd = boot_files(vm)
    return (kernel, initrd, boot_cmdline(vm)) if kernel or initrd else None


def boot_cmdline(vm: Any) -> str:
    """The kernel command line of the VM's kernel image disk ("" when it has none)."""
    return next((d.cmdline for d in _vm_disks(vm) if d.kind == VMDiskKind.KERNEL), "") or ""


def vms_using_image(image_id: int) -> list[Any]:
    """The VMs (not DONE) whose disks use image ``image_id`` (for the image manager's delete check)."""
    from compute.models import VirtualMachine

    return list(VirtualMachine.objects.filter(disks__image_id=image_id).exclude(state="DONE").distinct().order_by("pk"))


# --------------------------------------------------------------------------------------------
# template disks
# --------------------------------------------------------------------------------------------
def add_template_disk(template: Any, image: Any, *, size_bytes: int = 0, cmdline: str = "") -> TemplateDisk:
    """Give ``template`` a disk from ``image`` (or, with ``image`` None, an empty disk of
    ``size_bytes``), after its other disks; ``cmdline`` for a kernel image. Callers have
    checked who may do it (the OVF import, ``storage.services.disks.add_template_disk``)."""
    if cmdline and (image is None or image.type != "kernel"):
        raise InvalidInput("cmdline is for kernel images only", field="cmdline")
    if len(cmdline) > 1024:
        raise InvalidInput("cmdline is at most 1024 characters", field="cmdline")
    if image is None and size_bytes <= 0:
        raise InvalidInput("an empty disk needs size_bytes > 0", field="size_bytes")
    limit = template.disk_gb * GIB if image is None else max(template.disk_gb * GIB, image.virtual_size_bytes)
    if not 0 <= size_bytes <= limit:
        raise InvalidInput(
            f"size_bytes must be between 0 and {limit} (the template's disk_gb is {template.disk_gb} GiB)",
            field="size_bytes",
        )
    existing = list(TemplateDisk.objects.filter(template=template).order_by("position"))
    if len(existing) >= MAX_TEMPLATE_DISKS:
        raise InvalidInput(f"a template has at most {MAX_TEMPLATE_DISKS} disks", field="template")
    position = existing[-1].position + 1 if existing else 0
    return TemplateDisk.objects.create(
        template=template, image=image, size_bytes=size_bytes, position=position, cmdline=cmdline
    )


# --------------------------------------------------------------------------------------------
# the end of a VM
# --------------------------------------------------------------------------------------------
def on_vm_done(vm: Any) -> None:
    """The VM reached DONE (inside the state change's transaction): detach its volumes, give its
    persistent images back (READY) and remove volatile files that no EPILOG removed (a VM
    terminated while undeployed). Idempotent."""
    from .hooks import set_image_in_use
    from .services.volumes import release_volumes_of

    release_volumes_of(vm)  # each volume through the volume service: audit row, event
    disks = list(VMDisk.objects.filter(vm=vm))
    if not disks:
        return
    for d in disks:
        if d.persistent and d.image_id and not [v for v in vms_using_image(d.image_id) if v.pk != vm.pk]:
            set_image_in_use(d.image_id, False)
    volatile = [d.path for d in disks if d.volatile and d.path]
    if volatile:
        from . import tasks_volumes

        transaction.on_commit(lambda: tasks_volumes.remove_disk_files.delay(volatile))


def templates_using_image(image_id: int) -> list[Any]:
    """The templates with a disk from image ``image_id`` (the image manager refuses to delete it while any exists)."""
    from compute.models import VMTemplate

    return list(VMTemplate.objects.filter(disks__image_id=image_id).distinct().order_by("pk"))
