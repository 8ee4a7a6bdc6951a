"""Celery tasks of volumes and VM disks: load by primary key, do the file or driver work, finish
through ``storage.services.volumes`` (CONVENTIONS §7).

Work for a volume attached to a VM on a host runs on that host's agent queue (``host.<pk>``);
the rest on the default queue. Each task carries the operation's ``seq``: a stale or repeated
message finds nothing to do, and every step below is idempotent.
"""

from __future__ import annotations

import logging

from celery import shared_task

from compute.drivers.registry import get_driver
from specs import DriverError

from . import hostops
from .services import disks as disk_services
from .services import volumes as services
from .services.volumes import VolumeOrder

log = logging.getLogger(__name__)


def execute(order: VolumeOrder) -> int:
    """Carry out one volume operation (no ORM); the volume's size in bytes afterwards (0: unknown)."""
    op, a = order.operation, order.args
    if op == "create":
        if a.get("source"):
            hostops.convert(a["source"], a["source_format"], order.path, order.format, int(a["size"]))
        else:
            hostops.create_empty(order.path, order.format, int(a["size"]))
        return hostops.virtual_size(order.path, order.format)
    if op == "delete":
        hostops.remove(order.path)
        return 0
    if op in ("attach", "detach"):
        drv = get_driver(order.driver, order.uri)
        if op == "attach":
            if order.disk is None:
                raise DriverError("the volume's VM disk is gone")
            drv.attach_disk(order.domain, order.disk, live=True)
        else:
            drv.detach_disk(order.domain, _target(order), live=True)
        return 0
    if op == "grow":
        if a.get("live") and order.uri:
            get_driver(order.driver, order.uri).resize_disk(order.domain, _target(order), int(a["size"]))
        else:
            hostops.resize(order.path, order.format, int(a["size"]))
        return int(a["size"])
    if op == "snapshot":
        hostops.snapshot_create(order.path, a["tag"])
    elif op == "revert":
        hostops.snapshot_apply(order.path, a["tag"])
    elif op == "delete-snapshot":
        hostops.snapshot_delete(order.path, a["tag"])
    else:
        raise DriverError(f"no volume step for {op}")
    return 0


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
