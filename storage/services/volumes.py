"""The only code that changes volumes (CONVENTIONS §2); template disks and "save a VM disk as
an image" are in ``storage.services.disks``.

Every operation locks its rows in one order — the VM (when one is involved), then the volume —
checks the state, records the audit row and event, and queues the file or driver work after
commit (``storage.tasks_volumes``): on the host's agent queue when the volume belongs to a VM
on a host, else on the default queue. The task ends by calling ``complete_volume_step``.

Volume states: creating → available ⇄ (attaching → in-use → detaching); resizing,
snapshotting, reverting and deleting are transient and return to the state before them;
a failed create leaves ``error`` (deletable). Quotas ``volumes`` and ``volume_gb`` (whole GiB,
rounded up) are consumed at create / grow and released at delete, under the quota row locks.
"""

from __future__ import annotations

import os
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from compute.locking import lock_vm
from compute.models import VirtualMachine, name_validator
from compute.states import VMState
from monitoring.audit import record_action
from monitoring.events import emit
from portal.errors import Conflict, InvalidInput, NotFound
from specs import DiskSpec
from tenants import quotas
from tenants.models import Project

from .. import vmdisks
from ..models import (
    GIB,
    MAX_VOLUME_BYTES,
    Datastore,
    DatastoreKind,
    DatastoreState,
    VMDisk,
    VMDiskKind,
    VMDiskState,
    Volume,
    VolumeFormat,
    VolumeSnapshot,
    VolumeState,
)

V = VolumeState
# VM states in which a volume is attached or detached cold (the VM's disks change for its next boot)
COLD = (VMState.PENDING, VMState.HOLD, VMState.POWEROFF, VMState.STOPPED, VMState.UNDEPLOYED)
TARGET_RE = re.compile(r"^vd[b-z]$")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _lock_volume(actor: Any, volume_id: Any, action: str = "manage") -> Volume:
    qs = Volume.objects.all() if actor is None else Volume.objects.restrict(actor, action)
    try:
        return qs.select_for_update().get(pk=volume_id)
    except (Volume.DoesNotExist, ValueError, TypeError):
        raise NotFound("volume not found", field="volume") from None


def _lock_vm(actor: Any, vm_id: Any) -> VirtualMachine:
    return lock_vm(actor, vm_id, field="vm")


def _lock_with_vm(actor: Any, volume_id: Any) -> tuple[Volume, VirtualMachine | None]:
    """The volume and the VM it is attached to, both locked, VM first (the order attach uses)."""
    seen = Volume.objects.restrict(actor, "manage").filter(pk=volume_id).values_list("vm_id", flat=True)
    try:
        vm_id = seen.get() if str(volume_id).isdigit() else None
    except Volume.DoesNotExist:
        vm_id = None
        _lock_volume(actor, volume_id)  # raises NotFound
    vm = _lock_vm(actor, vm_id) if vm_id else None
    vol = _lock_volume(actor, volume_id)
    if vol.vm_id != vm_id:
        raise Conflict(f"volume {vol.name} was attached or detached meanwhile; try again", field="state")
    return vol, vm


def _vm_name(vol: Volume) -> str:
    return vol.vm.name if vol.vm is not None else "?"


def _not_busy(vol: Volume, what: str) -> None:
    if vol.operation:
        raise Conflict(f"cannot {what} volume {vol.name} while '{vol.operation}' is in progress", field="state")


def _set_state(vol: Volume, state: str, reason: str = "", **fields: Any) -> None:
    old = vol.state
    vol.state = state
    for k, v in fields.items():
        setattr(vol, k, v)
    vol.save()
    if old != state:
        emit(f"volume.state.{state}", vol, from_state=old, reason=reason[:255])


def queue_for(vol: Volume) -> str:
    """The Celery queue of a volume's work: its VM's host agent, else the default queue."""
    vm = vol.vm
    if vm is not None and vm.host_id is not None:
        return f"host.{vm.host_id}"
    return "nephele"


def _begin(vol: Volume, op: str, state: str, **args: Any) -> None:
    """Start an asynchronous operation and queue its task after commit."""
    from .. import tasks_volumes

    previous = vol.state if vol.state not in (V.CREATING, V.DELETING) else vol.previous_state
    _set_state(
        vol, state, op, previous_state=previous, operation=op, operation_args=args,
        operation_seq=vol.operation_seq + 1, state_message="",
    )  # fmt: skip
    pk, seq, queue = vol.pk, vol.operation_seq, queue_for(vol)
    transaction.on_commit(lambda: tasks_volumes.run_volume_step.apply_async((pk, seq), queue=queue))


def _size(value: Any, field_name: str = "size_bytes") -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field_name} must be a whole number of bytes", field=field_name) from None
    if not 1 <= n <= MAX_VOLUME_BYTES:
        raise InvalidInput(f"{field_name} must be between 1 and {MAX_VOLUME_BYTES} (16 TiB)", field=field_name)
    return -(-n // 512) * 512  # whole sectors, as qemu-img makes them


def _gb(n: int) -> int:
    return -(-n // GIB)


def _check_name(name: str) -> None:
    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None


def _datastore(datastore_id: Any, kind: str | None) -> Datastore | None:
    if datastore_id in (None, ""):
        return None
    ds = Datastore.objects.filter(pk=datastore_id).first() if str(datastore_id).isdigit() else None
    if ds is None or (kind and ds.kind != kind):
        raise NotFound(f"{kind or ''} datastore not found".strip(), field="datastore")
    if ds.state != DatastoreState.READY:
        raise Conflict(f"datastore {ds.name} is {ds.state}, not ready", field="datastore")
    return ds


def _volume_path(vol: Volume, ds: Datastore | None) -> str:
    root = ds.path if ds is not None else str(settings.NEPHELE_STATE_DIR / "volumes")
    return os.path.join(root, f"volume-{vol.uuid}.{vol.format}")


# --------------------------------------------------------------------------------------------
# create / delete
# --------------------------------------------------------------------------------------------
@transaction.atomic
def create_volume(
    actor: Any,
    *,
    project: Any,
    name: str,
    size_bytes: Any = None,
    image: Any = None,
    datastore: Any = None,
    format: str = VolumeFormat.QCOW2,
    description: str = "",
    ip: str | None = None,
) -> Volume:
    """A new volume in ``project``: empty (``size_bytes``), or a copy of ``image`` (grown to
    ``size_bytes`` when larger). Consumes ``volumes`` 1 and ``volume_gb``; answers CREATING."""
    from images.models import Image, ImageState, ImageType

    proj = Project.objects.restrict(actor, "manage").filter(pk=getattr(project, "pk", project)).first()
    if proj is None:
        raise NotFound("project not found", field="project")
    _check_name(name)
    if format not in VolumeFormat.values:
        raise InvalidInput(f"format must be one of {', '.join(VolumeFormat.values)}", field="format")
    img = None
    if image not in (None, ""):
        img = Image.objects.restrict(actor, "view").filter(pk=getattr(image, "pk", image)).first()
        if img is None:
            raise NotFound("image not found", field="image")
        if img.type not in (ImageType.OS, ImageType.DATABLOCK):
            raise InvalidInput(
                f"image {img.name} is a {img.type} image; volumes copy OS or data block images", field="image"
            )
        if img.state not in (ImageState.READY, ImageState.USED) or not img.path:
            raise Conflict(f"image {img.name} is {img.state}, not ready", field="image")
    if img is None and size_bytes in (None, ""):
        raise InvalidInput("size_bytes is required for an empty volume", field="size_bytes")
    size = _size(size_bytes) if size_bytes not in (None, "") else 0
    if img is not None:
        size = max(size, img.virtual_size_bytes)
    ds = _datastore(datastore, DatastoreKind.SYSTEM) or vmdisks.system_datastore(None, size)
    quotas.consume(proj, actor, volumes=1, volume_gb=_gb(size))
    vol = Volume.objects.create(
        project=proj, owner=actor, name=name, description=description, datastore=ds, size_bytes=size,
        format=format, source_image=img, state=V.CREATING,
    )  # fmt: skip
    vol.path = _volume_path(vol, ds)
    args: dict[str, Any] = {"size": size}
    if img is not None:
        args |= {"source": vmdisks.image_file(img), "source_format": vmdisks._disk_format(img)}
    record_action(actor, vol, "create", ip=ip, size_bytes=size, image=img.pk if img else None)
    _begin(vol, "create", V.CREATING, **args)
    return vol


@transaction.atomic
def delete_volume(actor: Any, volume_id: Any, *, ip: str | None = None) -> Volume:
    """Delete a volume that is not attached (refused naming the VM otherwise); its file goes
    first, then the row and the quota."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    if vol.vm_id:
        raise Conflict(f"volume {vol.name} is attached to VM {_vm_name(vol)}; detach it first", field="state")
    _not_busy(vol, "delete")
    record_action(actor, vol, "delete", ip=ip)
    _begin(vol, "delete", V.DELETING)
    return vol


# --------------------------------------------------------------------------------------------
# attach / detach
# --------------------------------------------------------------------------------------------
def _hotplug(vm: VirtualMachine) -> bool:
    from compute.drivers.registry import capabilities

    assert vm.host is not None
    return bool(capabilities(vm.host.driver, vm.host.uri).get("hotplug_disk"))


def _mode(vm: VirtualMachine, what: str) -> str:
    """ "cold" or "hot" for an attach / detach / grow on ``vm``; Conflict when neither works now."""
    if vm.operation:
        raise Conflict(f"cannot {what} while VM {vm.name} is busy ('{vm.operation}', {vm.state})", field="vm")
    if vm.state in COLD:
        return "cold"
    if vm.state == VMState.RUNNING:
        if not _hotplug(vm):
            raise Conflict(
                f"host {getattr(vm.host, 'name', '?')} cannot {what} on a running VM (no disk hotplug); "
                f"power VM {vm.name} off first",
                field="vm",
            )
        return "hot"
    raise Conflict(f"cannot {what} on a VM in state {vm.state}", field="vm")


def _vm_disk_row(vol: Volume, vm: VirtualMachine, target: str, state: str) -> VMDisk:
    return VMDisk.objects.create(
        vm=vm, volume=vol, datastore=vol.datastore, kind=VMDiskKind.DISK, target=target, path=vol.path,
        format=vol.format, size_bytes=vol.size_bytes, persistent=True, volatile=False, clone="none", state=state,
    )  # fmt: skip


@transaction.atomic
def attach_volume(actor: Any, volume_id: Any, vm_id: Any, *, target: str = "", ip: str | None = None) -> Volume:
    """Attach an available volume to a VM of its project: live when the VM runs on a host that
    hotplugs disks, else cold (the VM's disks for its next boot)."""
    vm = _lock_vm(actor, vm_id)
    vol = _lock_volume(actor, volume_id)
    if vm.project_id != vol.project_id:
        raise InvalidInput("the volume and the VM must be in the same project", field="vm")
    _not_busy(vol, "attach")
    if vol.state != V.AVAILABLE:
        raise Conflict(f"volume {vol.name} is {vol.state}, not available", field="state")
    mode = _mode(vm, "attach a volume")
    used = vmdisks.targets_in_use(vm)
    if target:
        if not TARGET_RE.match(target):
            raise InvalidInput("target must be vdb … vdz", field="target")
        if target in used:
            raise Conflict(f"VM {vm.name} already has a disk at {target}", field="target")
    else:
        target = vmdisks.next_target(used)
    record_action(actor, vol, "attach", ip=ip, vm=vm.pk, target=target, live=mode == "hot")
    vol.vm, vol.target = vm, target
    if mode == "cold":
        _vm_disk_row(vol, vm, target, VMDiskState.ATTACHED)
        _set_state(vol, V.IN_USE, f"attached to {vm.name}")
        return vol
    _vm_disk_row(vol, vm, target, VMDiskState.ATTACHING)
    _begin(vol, "attach", V.ATTACHING)
    return vol


@transaction.atomic
def detach_volume(actor: Any, volume_id: Any, *, ip: str | None = None) -> Volume:
    """Detach a volume from its VM: live when the VM runs (hotplug), else cold."""
    vol, vm = _lock_with_vm(actor, volume_id)
    _not_busy(vol, "detach")
    if vm is None:
        raise Conflict(f"volume {vol.name} is not attached", field="state")
    mode = _mode(vm, "detach a volume")
    record_action(actor, vol, "detach", ip=ip, vm=vm.pk, target=vol.target, live=mode == "hot")
    if mode == "cold":
        VMDisk.objects.filter(vm=vm, volume=vol).delete()
        _set_state(vol, V.AVAILABLE, f"detached from {vm.name}", vm=None, target="")
        return vol
    VMDisk.objects.filter(vm=vm, volume=vol).update(state=VMDiskState.DETACHING)
    _begin(vol, "detach", V.DETACHING)
    return vol


# --------------------------------------------------------------------------------------------
# grow / snapshots
# --------------------------------------------------------------------------------------------
@transaction.atomic
def grow_volume(actor: Any, volume_id: Any, size_bytes: Any, *, ip: str | None = None) -> Volume:
    """Grow a volume to ``size_bytes`` (never shrink): ``qemu-img resize``, or the hypervisor's
    block resize when attached to a running VM. The extra GiB are consumed from ``volume_gb``."""
    vol, vm = _lock_with_vm(actor, volume_id)
    _not_busy(vol, "grow")
    live = vm is not None and _mode(vm, "grow a volume") == "hot"
    if vol.state not in (V.AVAILABLE, V.IN_USE):
        raise Conflict(f"volume {vol.name} is {vol.state}", field="state")
    size = _size(size_bytes)
    if size <= vol.size_bytes:
        raise InvalidInput(f"size_bytes must be larger than the current {vol.size_bytes}", field="size_bytes")
    quotas.consume(vol.project, vol.owner, volume_gb=_gb(size) - vol.size_gb)
    record_action(actor, vol, "grow", ip=ip, size_bytes=size, live=live)
    _begin(vol, "grow", V.RESIZING, size=size, old_size=vol.size_bytes, live=live)
    return vol


def _snapshot_guard(vol: Volume, what: str) -> None:
    _not_busy(vol, what)
    if vol.format != VolumeFormat.QCOW2:
        raise Conflict(f"volume {vol.name} is {vol.format}: snapshots need qcow2", field="format")
    if vol.state not in (V.AVAILABLE, V.IN_USE):
        raise Conflict(f"volume {vol.name} is {vol.state}", field="state")
    vm = vol.vm
    if vm is not None and vm.state not in COLD:
        raise Conflict(
            f"cannot {what} volume {vol.name} while VM {vm.name} is {vm.state}: power it off or detach the volume",
            field="state",
        )


@transaction.atomic
def snapshot_volume(actor: Any, volume_id: Any, name: str, *, ip: str | None = None) -> VolumeSnapshot:
    """A qcow2 internal snapshot (refused while attached to a running VM)."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, "snapshot")
    _check_name(name)
    if vol.snapshots.filter(name=name).exists():
        raise Conflict(f"volume {vol.name} already has a snapshot named {name}", field="name")
    snap = VolumeSnapshot.objects.create(volume=vol, name=name, tag=f"nephele-{uuidlib.uuid4().hex[:12]}")
    record_action(actor, vol, "snapshot", ip=ip, snapshot=name)
    _begin(vol, "snapshot", V.SNAPSHOTTING, snapshot=snap.pk, tag=snap.tag)
    return snap


def _snapshot_of(vol: Volume, snapshot_id: Any) -> VolumeSnapshot:
    snap = vol.snapshots.filter(pk=snapshot_id).first() if str(snapshot_id).isdigit() else None
    if snap is None:
        raise NotFound("snapshot not found", field="snapshot")
    if not snap.ready:
        raise Conflict(f"snapshot {snap.name} is not ready", field="snapshot")
    return snap


@transaction.atomic
def revert_volume(actor: Any, volume_id: Any, snapshot_id: Any, *, ip: str | None = None) -> Volume:
    """Bring a volume back to a snapshot (refused while attached to a running VM)."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, "revert")
    snap = _snapshot_of(vol, snapshot_id)
    record_action(actor, vol, "revert", ip=ip, snapshot=snap.name)
    _begin(vol, "revert", V.REVERTING, snapshot=snap.pk, tag=snap.tag)
    return vol


@transaction.atomic
def delete_snapshot(actor: Any, volume_id: Any, snapshot_id: Any, *, ip: str | None = None) -> Volume:
    """Remove a snapshot from the volume's file, then its row."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, "delete a snapshot of")
    snap = _snapshot_of(vol, snapshot_id)
    record_action(actor, vol, "delete-snapshot", ip=ip, snapshot=snap.name)
    _begin(vol, "delete-snapshot", V.SNAPSHOTTING, snapshot=snap.pk, tag=snap.tag)
    return vol


# --------------------------------------------------------------------------------------------
# what the task does, and how it reports back
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeOrder:
    """One volume operation in plain values (the task needs no ORM to carry it out)."""

    volume_id: int
    seq: int
    operation: str
    path: str
    format: str
    args: dict[str, Any] = field(default_factory=dict)
    driver: str = ""  # the attached VM's host, for hot operations
    uri: str = ""
    domain: str = ""
    disk: DiskSpec | None = None


def volume_order(volume_id: int, seq: int) -> VolumeOrder | None:
    """What to do for ``volume_id`` at operation ``seq``; None when stale (idempotency)."""
    vol = Volume.objects.select_related("vm__host").filter(pk=volume_id).first()
    if vol is None or vol.operation_seq != seq or not vol.operation:
        return None
    order = VolumeOrder(vol.pk, seq, vol.operation, vol.path, vol.format, dict(vol.operation_args or {}))
    vm = vol.vm
    if vm is not None and vm.host is not None:
        disk = VMDisk.objects.filter(vm=vm, volume=vol).first()
        return VolumeOrder(
            vol.pk, seq, vol.operation, vol.path, vol.format, order.args, driver=vm.host.driver, uri=vm.host.uri,
            domain=vm.domain_name, disk=vmdisks.disk_spec(disk) if disk else None,
        )  # fmt: skip
    return order


@transaction.atomic
def complete_volume_step(volume_id: int, seq: int, error: str = "", size_bytes: int = 0) -> Volume | None:
    """The task reports; the volume moves on (or back, with ``error`` in ``state_message``)."""
    vol = Volume.objects.select_for_update().filter(pk=volume_id).first()
    if vol is None or vol.operation_seq != seq or not vol.operation:
        return None
    op, args = vol.operation, vol.operation_args or {}
    done = {"operation": "", "operation_args": {}, "state_message": error[:2000]}
    back = vol.previous_state or (V.IN_USE if vol.vm_id else V.AVAILABLE)
    if op == "create":
        _set_state(
            vol, V.ERROR if error else V.AVAILABLE, error or "created", size_bytes=size_bytes or vol.size_bytes, **done
        )
    elif op == "delete":
        if error:
            _set_state(vol, V.ERROR, error, **done)
        else:
            quotas.release(vol.project, vol.owner, volumes=1, volume_gb=vol.size_gb)
            emit("volume.deleted", vol)
            vol.delete()
            return None
    elif op == "attach":
        if error:
            VMDisk.objects.filter(volume=vol, state=VMDiskState.ATTACHING).delete()
            _set_state(vol, V.AVAILABLE, error, vm=None, target="", **done)
        else:
            VMDisk.objects.filter(volume=vol).update(state=VMDiskState.ATTACHED)
            _set_state(vol, V.IN_USE, "attached", **done)
    elif op == "detach":
        if error:
            VMDisk.objects.filter(volume=vol).update(state=VMDiskState.ATTACHED)
            _set_state(vol, V.IN_USE, error, **done)
        else:
            VMDisk.objects.filter(volume=vol).delete()
            _set_state(vol, V.AVAILABLE, "detached", vm=None, target="", **done)
    elif op == "grow":
        if error:
            quotas.release(vol.project, vol.owner, volume_gb=_gb(int(args["size"])) - vol.size_gb)
            _set_state(vol, back, error, **done)
        else:
            VMDisk.objects.filter(volume=vol).update(size_bytes=int(args["size"]))
            _set_state(vol, back, "grown", size_bytes=int(args["size"]), **done)
    elif op in ("snapshot", "revert", "delete-snapshot"):
        snap = VolumeSnapshot.objects.filter(pk=int(args.get("snapshot") or 0)).first()
        if snap is not None and not error:
            if op == "snapshot":
                snap.ready = True
                snap.save(update_fields=["ready"])
            elif op == "delete-snapshot":
                snap.delete()
        elif snap is not None and op == "snapshot":
            snap.delete()
        _set_state(vol, back, error or op, **done)
    return vol


@transaction.atomic
def recover_volume(actor: Any, volume_id: Any, *, ip: str | None = None) -> Volume:
    """Cloud administrators: give up the operation in flight (its task never reported, e.g. the
    host's agent is gone) and put the volume back where it was before; a create that never
    finished becomes ``error`` (deletable). The task, if it ever runs, finds its order stale."""
    from portal.errors import PermissionDenied
    from tenants.querysets import is_cloud_admin

    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators recover volumes")
    vol = _lock_volume(actor, volume_id)
    if not vol.operation:
        raise Conflict(f"volume {vol.name} has no operation in flight", field="state")
    op = vol.operation
    VMDisk.objects.filter(volume=vol, state=VMDiskState.ATTACHING).delete()
    VMDisk.objects.filter(volume=vol, state=VMDiskState.DETACHING).update(state=VMDiskState.ATTACHED)
    if op == "snapshot":
        VolumeSnapshot.objects.filter(pk=int(vol.operation_args.get("snapshot") or 0), ready=False).delete()
    fields: dict[str, Any] = {"operation": "", "operation_args": {}, "operation_seq": vol.operation_seq + 1}
    if op == "attach":
        fields |= {"vm": None, "target": ""}
    if op == "grow":
        quotas.release(vol.project, vol.owner, volume_gb=_gb(int(vol.operation_args["size"])) - vol.size_gb)
    state = V.ERROR if op in ("create", "delete") else (V.AVAILABLE if op == "attach" else vol.previous_state)
    state = state or (V.IN_USE if vol.vm_id and op != "attach" else V.AVAILABLE)
    record_action(actor, vol, "recover", ip=ip, operation=op)
    _set_state(vol, state, f"recovered: {op} abandoned", state_message=f"{op} abandoned by an administrator", **fields)
    return vol


# --------------------------------------------------------------------------------------------
# the end of a VM (compute's ``vm_done`` hook, through ``storage.vmdisks.on_vm_done``)
# --------------------------------------------------------------------------------------------
@transaction.atomic  # a savepoint inside the VM's state change: the caller's transaction
def release_volumes_of(vm: VirtualMachine) -> list[Volume]:
    """``vm`` reached DONE: every volume still attached to it becomes available again, each
    with its audit row and state event (the system acts). The caller holds the VM's row lock;
    the volumes are locked after it, the order attach uses. Idempotent."""
    released = []
    for vol in Volume.objects.select_for_update().filter(vm=vm).order_by("pk"):
        before = vol.state
        vol.vm, vol.target, vol.state, vol.operation, vol.previous_state = None, "", V.AVAILABLE, "", ""
        vol.save(update_fields=["vm", "target", "state", "operation", "previous_state", "updated_at"])
        record_action(None, vol, "release", vm=vm.pk, from_state=before)
        if before != V.AVAILABLE:
            emit(f"volume.state.{V.AVAILABLE}", vol, from_state=before, reason=f"VM {vm.pk} is done")
        released.append(vol)
    VMDisk.objects.filter(vm=vm, volume__isnull=False).delete()
    return released
