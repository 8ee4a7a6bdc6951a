"""Celery tasks of volumes and VM disks: load by primary key, do the file or driver work, finish
through ``storage.services.volumes`` (CONVENTIONS §7).

Work for a volume attached to a VM on a host runs on that host's agent queue (``host.<pk>``);
the rest on the default queue. Each task carries the operation's ``seq``: a stale or repeated
message finds nothing to do, and every step below is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task

from compute.drivers.registry import get_driver
from specs import DriverError

from . import hostops
from .services import disks as disk_services
from .services import volumes as services
from .services.volumes import VolumeOrder
from .states import VolumeAction

log = logging.getLogger(__name__)


def _create(order: VolumeOrder) -> int:
    a = order.args
    if a.get("source"):
        hostops.convert(a["source"], a["source_format"], order.path, order.format, int(a["size"]))
    else:
        hostops.create_empty(order.path, order.format, int(a["size"]))
    return hostops.virtual_size(order.path, order.format)


def _delete(order: VolumeOrder) -> int:
    hostops.remove(order.path)
    return 0


def _attach(order: VolumeOrder) -> int:
    if order.disk is None:
        raise DriverError("the volume's VM disk is gone")
    get_driver(order.driver, order.uri).attach_disk(order.domain, order.disk, live=True)
    return 0


def _detach(order: VolumeOrder) -> int:
    get_driver(order.driver, order.uri).detach_disk(order.domain, _target(order), live=True)
    return 0


def _grow(order: VolumeOrder) -> int:
    size = int(order.args["size"])
    if order.args.get("live") and order.uri:
        get_driver(order.driver, order.uri).resize_disk(order.domain, _target(order), size)
    else:
        hostops.resize(order.path, order.format, size)
    return size


def _snapshot(order: VolumeOrder) -> int:
    hostops.snapshot_create(order.path, order.args["tag"])
    return 0


def _revert(order: VolumeOrder) -> int:
    hostops.snapshot_apply(order.path, order.args["tag"])
    return 0


def _delete_snapshot(order: VolumeOrder) -> int:
    hostops.snapshot_delete(order.path, order.args["tag"])
    return 0


#: The work of each asynchronous volume operation.
STEPS: dict[str, Callable[[VolumeOrder], int]] = {
    VolumeAction.CREATE: _create,
    VolumeAction.DELETE: _delete,
    VolumeAction.ATTACH: _attach,
    VolumeAction.DETACH: _detach,
    VolumeAction.GROW: _grow,
    VolumeAction.SNAPSHOT: _snapshot,
    VolumeAction.REVERT: _revert,
    VolumeAction.DELETE_SNAPSHOT: _delete_snapshot,
}


def execute(order: VolumeOrder) -> int:
    """Carry out one volume operation (no ORM); the volume's size in bytes afterwards (0: unknown)."""
    step = STEPS.get(order.operation)
    if step is None:
        raise DriverError(f"no volume step for {order.operation}")
    return step(order)


def _target(order: VolumeOrder) -> str:
    if order.disk is None:
        raise DriverError("the volume is not attached")
    return order.disk.target


@shared_task(name="storage.run_volume_step", acks_late=True)
def run_volume_step(volume_id: int, seq: int) -> str:
    """Carry out the volume's operation ``seq`` and report it."""
    order = services.volume_order(volume_id, seq)
    if order is None:
        return "stale"
    try:
        size = execute(order)
    except DriverError as exc:
        services.complete_volume_step(volume_id, seq, error=f"{order.operation} failed: {exc}")
        return str(exc)
    services.complete_volume_step(volume_id, seq, size_bytes=size)
    return "ok"


@shared_task(name="storage.save_vm_disk", acks_late=True)
def save_vm_disk(disk_id: int, actor_id: int | None, name: str, datastore_id: int, dest: str) -> str:
    """Flatten a VM disk into ``dest`` (qcow2, in an image datastore), then register it."""
    from .models import VMDisk

    disk = VMDisk.objects.filter(pk=disk_id).values("path", "format").first()
    if disk is None:
        return "gone"
    error = ""
    try:
        # the source's format is pinned (an overlay's backing chain is followed by qemu-img)
        hostops.convert(disk["path"], disk["format"], dest, "qcow2")
    except DriverError as exc:
        error = str(exc)
    image = disk_services.finish_save_disk(disk_id, actor_id, name, datastore_id, dest, error)
    return error or f"image {getattr(image, 'pk', None)}"


@shared_task(name="storage.remove_disk_files")
def remove_disk_files(paths: list[str]) -> int:
    """Remove a terminated VM's volatile disk files (idempotent: a missing file is fine)."""
    for path in paths:
        hostops.remove(path)
    return len(paths)
