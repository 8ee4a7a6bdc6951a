"""The only code that changes template disks and VM disks themselves (CONVENTIONS §2):
adding / removing a template's disks, and saving a VM disk as a new image. Volumes, which are
attached as VM disks, are in ``storage.services.volumes``.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from typing import Any

from django.db import transaction

from compute.states import VMState
from monitoring.audit import record_action
from monitoring.events import emit
from portal import outbox
from portal.errors import Conflict, InvalidInput, NotFound
from tenants import quotas
from tenants.querysets import Actor

from .. import vmdisks
from ..models import Datastore, DatastoreKind, TemplateDisk, VMDisk, VMDiskKind
from ..states import VMDiskState
from .volumes import _check_name, _datastore, _lock_vm


# --------------------------------------------------------------------------------------------
# template disks and "save a VM disk as an image"
# --------------------------------------------------------------------------------------------
@transaction.atomic
def add_template_disk(
    actor: Actor, template_id: Any, *, image: Any = None, size_bytes: int = 0, cmdline: str = ""
) -> TemplateDisk:
    """Give a template (that ``actor`` manages) a disk from an image ``actor`` may see, or an empty one."""
    from compute.models import VMTemplate
    from images.models import Image

    tpl = VMTemplate.objects.restrict(actor, "manage").select_for_update().filter(pk=template_id).first()
    if tpl is None:
        raise NotFound("template not found", field="template")
    img = None
    if image not in (None, ""):
        img = Image.objects.restrict(actor, "view").filter(pk=getattr(image, "pk", image)).first()
        if img is None:
            raise NotFound("image not found", field="image")
    td = vmdisks.add_template_disk(tpl, img, size_bytes=int(size_bytes or 0), cmdline=cmdline)
    record_action(actor, tpl, "add-disk", image=img.pk if img else None, size_bytes=td.size_bytes)
    return td


@transaction.atomic
def remove_template_disk(actor: Actor, template_disk_id: Any) -> None:
    """Remove a disk from a template (VMs already made from it keep theirs)."""
    td = TemplateDisk.objects.restrict(actor, "manage").select_related("template").filter(pk=template_disk_id).first()
    if td is None:
        raise NotFound("template disk not found", field="template_disk")
    record_action(actor, td.template, "remove-disk", position=td.position)
    td.delete()


@transaction.atomic
def save_disk_as_image(
    actor: Actor, vm_disk_id: Any, *, name: str, datastore: Any = None, ip: str | None = None
) -> VMDisk:
    """Copy a VM disk (its overlay flattened, or the volume) into an image datastore as a new
    image of the VM's project, once the copy is done (``qemu-img convert`` then
    ``images.services.register_file``). The VM must not run (a consistent copy)."""
    from .datastores import default_image_datastore

    disk = VMDisk.objects.restrict(actor, "manage").filter(pk=vm_disk_id).select_related("vm").first()
    if disk is None:
        raise NotFound("VM disk not found", field="disk")
    vm = _lock_vm(actor, disk.vm_id)
    disk = VMDisk.objects.select_for_update().get(pk=disk.pk)
    _check_name(name)
    if disk.kind != VMDiskKind.DISK:
        raise InvalidInput(f"a {disk.kind} cannot be saved as an image", field="disk")
    if disk.state != VMDiskState.ATTACHED:
        raise Conflict(f"disk {disk.target} is {disk.state}", field="state")
    if vm.operation or vm.state not in (VMState.POWEROFF, VMState.STOPPED, VMState.UNDEPLOYED):
        raise Conflict(f"power VM {vm.name} off first (it is {vm.state})", field="state")
    if not os.path.exists(disk.path):
        raise Conflict(f"disk {disk.target} has not been created yet (the VM never ran)", field="disk")
    ds = _datastore(datastore, DatastoreKind.IMAGE) or default_image_datastore()
    dest = os.path.join(os.path.realpath(ds.path), f"{uuidlib.uuid4()}.qcow2")
    disk.state = VMDiskState.SAVING
    disk.save(update_fields=["state"])
    record_action(actor, vm, "save-disk", ip=ip, target=disk.target, image_name=name, datastore=ds.name)
    args = (disk.pk, getattr(actor, "pk", None), name, ds.pk, disk.path, disk.format, dest)
    outbox.send("hostagent.save_disk", args, queue=vm.host.queue if vm.host is not None else "nephele")
    return disk


@transaction.atomic
def finish_save_disk(
    disk_id: int, actor_id: int | None, name: str, datastore_id: int, path: str, error: str = ""
) -> Any:
    """The copy is done (or failed): register it as an image, and give the disk back."""
    from django.contrib.auth import get_user_model

    from ..hooks import adopt_image_file
    from ..hostops import remove

    disk = VMDisk.objects.select_for_update().select_related("vm__project").filter(pk=disk_id).first()
    if disk is None or disk.state != VMDiskState.SAVING:
        return None
    VMDisk.objects.filter(pk=disk.pk).update(state=VMDiskState.ATTACHED)
    actor = get_user_model().objects.filter(pk=actor_id or 0).first()
    image = None
    if not error:
        try:
            with transaction.atomic():
                image = adopt_image_file(
                    actor, project=disk.vm.project, name=name, datastore=Datastore.objects.get(pk=datastore_id),
                    path=path, type="os",
                )  # fmt: skip
        except (InvalidInput, Conflict, NotFound, quotas.QuotaExceeded) as exc:
            error = exc.message
    if error:
        remove(path)
        emit("virtualmachine.disk.save_failed", disk.vm, actor=actor, target=disk.target, error=error[:500])
    else:
        emit("virtualmachine.disk.saved", disk.vm, actor=actor, target=disk.target, image=getattr(image, "pk", None))
    return image
