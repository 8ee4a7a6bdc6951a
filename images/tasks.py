"""Celery tasks of the image manager: load by primary key, run qemu-img, finish through a
service (CONVENTIONS §7). Each is idempotent: an image no longer CONVERTING is left alone,
and a retried conversion rewrites its ``.tmp`` file from the start."""

from __future__ import annotations

import logging

from celery import shared_task

from portal import periodic
from portal.celery import RETRY_TRANSIENT

from . import qemu
from .services import derive, ovf
from .services.core import remove_files
from .services.upload import cleanup_uploads as _cleanup_uploads

log = logging.getLogger(__name__)


def _run_convert(image_id: int, src: str, src_fmt: str, dst: str, dst_fmt: str, options: str = "") -> str:
    tmp = f"{dst}.tmp"
    try:
        qemu.convert(
            src, src_fmt, tmp, dst_fmt, options=options, progress=lambda p: derive.report_progress(image_id, p)
        )
    except qemu.QemuImgError as exc:
        derive.finish_derive(image_id, tmp, error=f"qemu-img convert failed: {exc.message}")
        return "failed"
    derive.finish_derive(image_id, tmp)
    return "ok"


@shared_task(name="images.clone_image", acks_late=True, **RETRY_TRANSIENT)
def clone_image(image_id: int) -> str:
    """Copy the source image's file into the clone's (same format, sparse)."""
    order = derive.derive_order(image_id)
    if order is None:
        return "stale"
    return _run_convert(image_id, *order)


@shared_task(name="images.convert_image", acks_late=True, **RETRY_TRANSIENT)
def convert_image(image_id: int) -> str:
    """Write the source image converted to the target's format."""
    order = derive.derive_order(image_id)
    if order is None:
        return "stale"
    return _run_convert(image_id, *order)


@shared_task(name="images.import_disk", acks_late=True, **RETRY_TRANSIENT)
def import_disk(image_id: int) -> str:
    """Extract one disk of an OVF / OVA import (streamed, inside the datastore), check it
    and convert it to qcow2."""
    order = ovf.disk_order(image_id)
    if order is None:
        return "stale"
    try:
        src, src_fmt = ovf.extract_disk(image_id, order)
    except (qemu.QemuImgError, OSError, ValueError) as exc:
        derive.finish_derive(image_id, f"{order.target}.tmp", error=f"import refused: {exc}")
        ovf.finish_archive(order.archive)
        return "failed"
    try:
        return _run_convert(image_id, src, src_fmt, order.target, "qcow2")
    finally:
        remove_files(src)
        ovf.finish_archive(order.archive)


@shared_task(name="images.cleanup_uploads")
def cleanup_uploads() -> int:
    """Periodic: abandoned uploads become ERROR and lose their ``.part`` file."""
    return _cleanup_uploads()


@shared_task(name="images.sweep_stuck_images")
def sweep_stuck_images() -> dict[str, object]:
    """Periodic (beat): re-drive (or, after a few tries, fail) conversions that made no progress."""
    return periodic.each("sweep_stuck_images", derive.stuck_images(), derive.sweep_image).as_result()
