"""The only code that changes volumes (CONVENTIONS §2); template disks and "save a VM disk as
an image" are in ``storage.services.disks``.

Every operation locks its rows in one order — the VM (when one is involved), then the volume —
checks the state, records the audit row and event, and queues the file or driver work after
commit (``storage.tasks_volumes``): on the host's agent queue when the volume belongs to a VM
on a host, else on the default queue. The task ends by calling ``complete_volume_step``.

States, actions and what each is allowed from are in ``storage.states`` (the buttons read the
same table); the lock / begin / finish / stale-sequence checks are ``portal.operations``. Quotas ``volumes`` and ``volume_gb`` (whole GiB,
rounded up) are consumed at create / grow and released at delete, under the quota row locks.
"""

from __future__ import annotations

import os
import re
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from compute.locking import lock_vm
from compute.models import VirtualMachine, name_validator
from monitoring.audit import record_action
from monitoring.events import emit
from portal import operations, outbox
from portal.errors import Conflict, InvalidInput, NotFound
from portal.operations import Refusal
from specs import VolumeOrder
from tenants import quotas
from tenants.models import Project
from tenants.querysets import Actor

from .. import vmdisks
from ..models import (
    GIB,
    MAX_VOLUME_BYTES,
    Datastore,
    DatastoreKind,
    DatastoreState,
    VMDisk,
    VMDiskKind,
    Volume,
    VolumeFormat,
    VolumeSnapshot,
)
from ..states import (
    COLD_VM_STATES,
    KEEP_PREVIOUS,
    SNAPSHOT_VM_STATES,
    TABLE,
    VM_SIDE,
    VMDiskState,
    VolumeAction,
    VolumeState,
)

V = VolumeState
A = VolumeAction
TARGET_RE = re.compile(r"^vd[b-z]$")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _lock_volume(actor: Actor, volume_id: Any, action: str = "manage") -> Volume:
    return operations.lock(Volume, volume_id, actor=actor, action=action, what="volume", field="volume")


def _lock_vm(actor: Actor, vm_id: Any) -> VirtualMachine:
    return lock_vm(actor, vm_id, field="vm")


def _lock_with_vm(actor: Actor, volume_id: Any) -> tuple[Volume, VirtualMachine | None]:
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


def _allowed(vol: Volume, action: A, not_allowed: str = "") -> None:
    """409 unless ``action`` is allowed from the volume's state (``storage.states.TABLE``).
    Callers check the operation in flight first (``_not_busy``: its message names the verb)."""
    if TABLE.refusal(action, vol.state, busy=vol.busy) is Refusal.STATE:
        raise Conflict(f"volume {vol.name} is {vol.state}{not_allowed}", field="state")


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


def _begin(vol: Volume, op: A, state: str, **args: Any) -> None:
    """Start an asynchronous operation and queue its task (with the new sequence) after commit."""
    operations.begin(vol, op, state, write=_set_state, keep_previous=KEEP_PREVIOUS, args=args, state_message="")
    _dispatch(vol)


def _dispatch(vol: Volume) -> None:
    """Queue the volume's current step (its sequence number in the message) after commit."""
    outbox.send("hostagent.run_volume_step", (vol.pk, vol.operation_seq), queue=queue_for(vol))


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
    actor: User,
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
    record_action(actor, vol, A.CREATE, ip=ip, size_bytes=size, image=img.pk if img else None)
    _begin(vol, A.CREATE, V.CREATING, **args)
    return vol


@transaction.atomic
def delete_volume(actor: Actor, volume_id: Any, *, ip: str | None = None) -> Volume:
    """Delete a volume that is not attached (refused naming the VM otherwise); its file goes
    first, then the row and the quota."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    if vol.vm_id:
        raise Conflict(f"volume {vol.name} is attached to VM {_vm_name(vol)}; detach it first", field="state")
    _not_busy(vol, "delete")
    _allowed(vol, A.DELETE)
    record_action(actor, vol, A.DELETE, ip=ip)
    _begin(vol, A.DELETE, V.DELETING)
    return vol


# --------------------------------------------------------------------------------------------
# attach / detach
# --------------------------------------------------------------------------------------------
def _hotplug(vm: VirtualMachine) -> bool:
    from compute.drivers.registry import capabilities

    assert vm.host is not None
    return bool(capabilities(vm.host.driver, vm.host.uri).get("hotplug_disk"))


def _mode(vm: VirtualMachine, action: A, what: str) -> str:
    """ "cold" or "hot" for an attach / detach / grow on ``vm``; Conflict when neither works now
    (``storage.states.VM_SIDE``: the VM idle, in a cold state or running on a host that hotplugs)."""
    if vm.busy:
        raise Conflict(f"cannot {what} while VM {vm.name} is busy ('{vm.operation}', {vm.state})", field="vm")
    if not VM_SIDE.allowed(action, vm.state):
        raise Conflict(f"cannot {what} on a VM in state {vm.state}", field="vm")
    if vm.state in COLD_VM_STATES:
        return "cold"
    if not _hotplug(vm):
        raise Conflict(
            f"host {getattr(vm.host, 'name', '?')} cannot {what} on a running VM (no disk hotplug); "
            f"power VM {vm.name} off first",
            field="vm",
        )
    return "hot"


def _vm_disk_row(vol: Volume, vm: VirtualMachine, target: str, state: str) -> VMDisk:
    return VMDisk.objects.create(
        vm=vm, volume=vol, datastore=vol.datastore, kind=VMDiskKind.DISK, target=target, path=vol.path,
        format=vol.format, size_bytes=vol.size_bytes, persistent=True, volatile=False, clone="none", state=state,
    )  # fmt: skip


@transaction.atomic
def attach_volume(actor: Actor, volume_id: Any, vm_id: Any, *, target: str = "", ip: str | None = None) -> Volume:
    """Attach an available volume to a VM of its project: live when the VM runs on a host that
    hotplugs disks, else cold (the VM's disks for its next boot)."""
    vm = _lock_vm(actor, vm_id)
    vol = _lock_volume(actor, volume_id)
    if vm.project_id != vol.project_id:
        raise InvalidInput("the volume and the VM must be in the same project", field="vm")
    _not_busy(vol, "attach")
    _allowed(vol, A.ATTACH, ", not available")
    mode = _mode(vm, A.ATTACH, "attach a volume")
    used = vmdisks.targets_in_use(vm)
    if target:
        if not TARGET_RE.match(target):
            raise InvalidInput("target must be vdb … vdz", field="target")
        if target in used:
            raise Conflict(f"VM {vm.name} already has a disk at {target}", field="target")
    else:
        target = vmdisks.next_target(used)
    record_action(actor, vol, A.ATTACH, ip=ip, vm=vm.pk, target=target, live=mode == "hot")
    vol.vm, vol.target = vm, target
    if mode == "cold":
        _vm_disk_row(vol, vm, target, VMDiskState.ATTACHED)
        _set_state(vol, V.IN_USE, f"attached to {vm.name}")
        return vol
    _vm_disk_row(vol, vm, target, VMDiskState.ATTACHING)
    _begin(vol, A.ATTACH, V.ATTACHING)
    return vol


@transaction.atomic
def detach_volume(actor: Actor, volume_id: Any, *, ip: str | None = None) -> Volume:
    """Detach a volume from its VM: live when the VM runs (hotplug), else cold."""
    vol, vm = _lock_with_vm(actor, volume_id)
    _not_busy(vol, "detach")
    if vm is None:
        raise Conflict(f"volume {vol.name} is not attached", field="state")
    _allowed(vol, A.DETACH)
    mode = _mode(vm, A.DETACH, "detach a volume")
    record_action(actor, vol, A.DETACH, ip=ip, vm=vm.pk, target=vol.target, live=mode == "hot")
    if mode == "cold":
        VMDisk.objects.filter(vm=vm, volume=vol).delete()
        _set_state(vol, V.AVAILABLE, f"detached from {vm.name}", vm=None, target="")
        return vol
    VMDisk.objects.filter(vm=vm, volume=vol).update(state=VMDiskState.DETACHING)
    _begin(vol, A.DETACH, V.DETACHING)
    return vol


# --------------------------------------------------------------------------------------------
# grow / snapshots
# --------------------------------------------------------------------------------------------
@transaction.atomic
def grow_volume(actor: Actor, volume_id: Any, size_bytes: Any, *, ip: str | None = None) -> Volume:
    """Grow a volume to ``size_bytes`` (never shrink): ``qemu-img resize``, or the hypervisor's
    block resize when attached to a running VM. The extra GiB are consumed from ``volume_gb``."""
    vol, vm = _lock_with_vm(actor, volume_id)
    _not_busy(vol, "grow")
    live = vm is not None and _mode(vm, A.GROW, "grow a volume") == "hot"
    _allowed(vol, A.GROW)
    size = _size(size_bytes)
    if size <= vol.size_bytes:
        raise InvalidInput(f"size_bytes must be larger than the current {vol.size_bytes}", field="size_bytes")
    quotas.consume(vol.project, vol.owner, volume_gb=_gb(size) - vol.size_gb)
    record_action(actor, vol, A.GROW, ip=ip, size_bytes=size, live=live)
    _begin(vol, A.GROW, V.RESIZING, size=size, old_size=vol.size_bytes, live=live)
    return vol


def _snapshot_guard(vol: Volume, action: A, what: str) -> None:
    _not_busy(vol, what)
    if vol.format != VolumeFormat.QCOW2:
        raise Conflict(f"volume {vol.name} is {vol.format}: snapshots need qcow2", field="format")
    _allowed(vol, action)
    vm = vol.vm
    if vm is not None and vm.state not in SNAPSHOT_VM_STATES:
        raise Conflict(
            f"cannot {what} volume {vol.name} while VM {vm.name} is {vm.state}: power it off or detach the volume",
            field="state",
        )


@transaction.atomic
def snapshot_volume(actor: Actor, volume_id: Any, name: str, *, ip: str | None = None) -> VolumeSnapshot:
    """A qcow2 internal snapshot (refused while attached to a running VM)."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, A.SNAPSHOT, "snapshot")
    _check_name(name)
    if vol.snapshots.filter(name=name).exists():
        raise Conflict(f"volume {vol.name} already has a snapshot named {name}", field="name")
    snap = VolumeSnapshot.objects.create(volume=vol, name=name, tag=f"nephele-{uuidlib.uuid4().hex[:12]}")
    record_action(actor, vol, A.SNAPSHOT, ip=ip, snapshot=name)
    _begin(vol, A.SNAPSHOT, V.SNAPSHOTTING, snapshot=snap.pk, tag=snap.tag)
    return snap


def _snapshot_of(vol: Volume, snapshot_id: Any) -> VolumeSnapshot:
    snap = vol.snapshots.filter(pk=snapshot_id).first() if str(snapshot_id).isdigit() else None
    if snap is None:
        raise NotFound("snapshot not found", field="snapshot")
    if not snap.ready:
        raise Conflict(f"snapshot {snap.name} is not ready", field="snapshot")
    return snap


@transaction.atomic
def revert_volume(actor: Actor, volume_id: Any, snapshot_id: Any, *, ip: str | None = None) -> Volume:
    """Bring a volume back to a snapshot (refused while attached to a running VM)."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, A.REVERT, "revert")
    snap = _snapshot_of(vol, snapshot_id)
    record_action(actor, vol, A.REVERT, ip=ip, snapshot=snap.name)
    _begin(vol, A.REVERT, V.REVERTING, snapshot=snap.pk, tag=snap.tag)
    return vol


@transaction.atomic
def delete_snapshot(actor: Actor, volume_id: Any, snapshot_id: Any, *, ip: str | None = None) -> Volume:
    """Remove a snapshot from the volume's file, then its row."""
    vol, _vm = _lock_with_vm(actor, volume_id)
    _snapshot_guard(vol, A.DELETE_SNAPSHOT, "delete a snapshot of")
    snap = _snapshot_of(vol, snapshot_id)
    record_action(actor, vol, A.DELETE_SNAPSHOT, ip=ip, snapshot=snap.name)
    _begin(vol, A.DELETE_SNAPSHOT, V.SNAPSHOTTING, snapshot=snap.pk, tag=snap.tag)
    return vol


# --------------------------------------------------------------------------------------------
# what the task does, and how it reports back
# --------------------------------------------------------------------------------------------
def volume_order(volume_id: int, seq: int) -> VolumeOrder | None:
    """What to do for ``volume_id`` at operation ``seq``; None when stale (idempotency)."""
    vol = Volume.objects.select_related("vm__host").filter(pk=volume_id).first()
    if vol is None or not operations.accept(vol, seq):
        return None
    op, args = A(vol.operation), dict(vol.operation_args or {})
    vm = vol.vm
    if vm is not None and vm.host is not None:
        disk = VMDisk.objects.filter(vm=vm, volume=vol).first()
        return VolumeOrder(
            vol.pk, seq, op, vol.path, vol.format, args, driver=vm.host.driver, uri=vm.host.uri,
            domain=vm.domain_name, disk=vmdisks.disk_spec(disk) if disk else None,
        )  # fmt: skip
    return VolumeOrder(vol.pk, seq, op, vol.path, vol.format, args)


@dataclass(frozen=True)
class _Report:
    """A task's report on the operation in flight, and where the volume returns to."""

    error: str
    size_bytes: int
    args: dict[str, Any]
    back: str  # the state before the operation

    def finish(self, vol: Volume, state: str, reason: str, **fields: Any) -> Volume:
        operations.finish(vol, state, write=_set_state, reason=reason, state_message=self.error[:2000], **fields)
        return vol


def _created(vol: Volume, r: _Report) -> Volume | None:
    return r.finish(vol, V.ERROR if r.error else V.AVAILABLE, r.error or "created",
                    size_bytes=r.size_bytes or vol.size_bytes)  # fmt: skip


def _deleted(vol: Volume, r: _Report) -> Volume | None:
    if r.error:
        return r.finish(vol, V.ERROR, r.error)
    quotas.release(vol.project, vol.owner, volumes=1, volume_gb=vol.size_gb)
    emit("volume.deleted", vol)
    vol.delete()
    return None


def _attached(vol: Volume, r: _Report) -> Volume | None:
    if r.error:
        VMDisk.objects.filter(volume=vol, state=VMDiskState.ATTACHING).delete()
        return r.finish(vol, V.AVAILABLE, r.error, vm=None, target="")
    VMDisk.objects.filter(volume=vol).update(state=VMDiskState.ATTACHED)
    return r.finish(vol, V.IN_USE, "attached")


def _detached(vol: Volume, r: _Report) -> Volume | None:
    if r.error:
        VMDisk.objects.filter(volume=vol).update(state=VMDiskState.ATTACHED)
        return r.finish(vol, V.IN_USE, r.error)
    VMDisk.objects.filter(volume=vol).delete()
    return r.finish(vol, V.AVAILABLE, "detached", vm=None, target="")


def _grown(vol: Volume, r: _Report) -> Volume | None:
    size = int(r.args["size"])
    if r.error:
        quotas.release(vol.project, vol.owner, volume_gb=_gb(size) - vol.size_gb)
        return r.finish(vol, r.back, r.error)
    VMDisk.objects.filter(volume=vol).update(size_bytes=size)
    return r.finish(vol, r.back, "grown", size_bytes=size)


def _snapshot_done(op: A) -> Callable[[Volume, _Report], Volume | None]:
    def done(vol: Volume, r: _Report) -> Volume | None:
        snap = VolumeSnapshot.objects.filter(pk=int(r.args.get("snapshot") or 0)).first()
        if snap is not None and not r.error:
            if op == A.SNAPSHOT:
                snap.ready = True
                snap.save(update_fields=["ready"])
            elif op == A.DELETE_SNAPSHOT:
                snap.delete()
        elif snap is not None and op == A.SNAPSHOT:
            snap.delete()
        return r.finish(vol, r.back, r.error or op)

    return done


#: How each asynchronous operation ends (None: the volume is gone).
_COMPLETE: dict[str, Callable[[Volume, _Report], Volume | None]] = {
    A.CREATE: _created,
    A.DELETE: _deleted,
    A.ATTACH: _attached,
    A.DETACH: _detached,
    A.GROW: _grown,
    A.SNAPSHOT: _snapshot_done(A.SNAPSHOT),
    A.REVERT: _snapshot_done(A.REVERT),
    A.DELETE_SNAPSHOT: _snapshot_done(A.DELETE_SNAPSHOT),
}


@transaction.atomic
def complete_volume_step(volume_id: int, seq: int, error: str = "", size_bytes: int = 0) -> Volume | None:
    """The task reports; the volume moves on (or back, with ``error`` in ``state_message``).
    A stale or repeated report (another sequence, or nothing in flight) changes nothing."""
    vol = operations.current(Volume, volume_id, seq)
    if vol is None:
        return None
    back = vol.previous_state or (V.IN_USE if vol.vm_id else V.AVAILABLE)
    report = _Report(error, size_bytes, dict(vol.operation_args or {}), back)
    return _COMPLETE[A(vol.operation)](vol, report)


@transaction.atomic
def recover_volume(actor: Actor, volume_id: Any, *, ip: str | None = None) -> Volume:
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
    record_action(actor, vol, A.RECOVER, ip=ip, operation=vol.operation)
    return _give_up(vol, f"{vol.operation} abandoned by an administrator")


def _give_up(vol: Volume, message: str) -> Volume:
    """Abandon the locked volume's operation in flight and put it back where it was before."""
    op = A(vol.operation)
    VMDisk.objects.filter(volume=vol, state=VMDiskState.ATTACHING).delete()
    VMDisk.objects.filter(volume=vol, state=VMDiskState.DETACHING).update(state=VMDiskState.ATTACHED)
    if op == A.SNAPSHOT:
        VolumeSnapshot.objects.filter(pk=int(vol.operation_args.get("snapshot") or 0), ready=False).delete()
    fields: dict[str, Any] = {}
    if op == A.ATTACH:
        fields |= {"vm": None, "target": ""}
    if op == A.GROW:
        quotas.release(vol.project, vol.owner, volume_gb=_gb(int(vol.operation_args["size"])) - vol.size_gb)
    state = V.ERROR if op in (A.CREATE, A.DELETE) else (V.AVAILABLE if op == A.ATTACH else vol.previous_state)
    state = state or (V.IN_USE if vol.vm_id and op != A.ATTACH else V.AVAILABLE)
    operations.abandon(
        vol, state, write=_set_state, reason=f"recovered: {op} abandoned", state_message=message[:2000], **fields
    )
    return vol


def stuck_volumes() -> list[int]:
    """Volumes whose operation's step was queued longer ago than ``NEPHELE_STEP_DEADLINE_S``."""
    from datetime import timedelta

    from django.utils import timezone

    before = timezone.now() - timedelta(seconds=settings.NEPHELE_STEP_DEADLINE_S)
    qs = Volume.objects.filter(operation_at__lt=before).exclude(operation="")
    return list(qs.order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def sweep_volume(volume_id: int) -> str:
    """The sweeper (compute/services/sweeper.py has the VM side): re-queue a stuck volume step
    with the same sequence number, or give the operation up after ``NEPHELE_STEP_MAX_TRIES``."""
    vol = Volume.objects.select_for_update().filter(pk=volume_id).first()
    if vol is None:
        return ""
    deadline = settings.NEPHELE_STEP_DEADLINE_S
    verdict = operations.stuck_verdict(vol, deadline_s=deadline, max_tries=settings.NEPHELE_STEP_MAX_TRIES)
    if verdict == "redrive":
        vol.save(update_fields=["operation_at", "operation_tries"])
        emit("volume.step_redriven", vol, operation=vol.operation, seq=vol.operation_seq, attempt=vol.operation_tries)
        _dispatch(vol)
    elif verdict == "fail":
        _give_up(vol, f"{vol.operation} made no progress in {vol.operation_tries + 1} × {deadline:.0f} s; given up")
    return verdict


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
