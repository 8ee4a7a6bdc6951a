"""Images made from nothing or from another image: empty data blocks (``qemu-img create``),
clones (same or another image datastore) and conversions to another format.

A conversion makes a *new* image (``<name>-<format>``, ``derived_from`` the source) and leaves
the source as it is: the federation manager keeps one image in several formats, and a VM
using the source is never disturbed. Clone and convert run as Celery tasks
(``images.clone_image``, ``images.convert_image``) on a target row in CONVERTING whose
``progress`` follows qemu-img's.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from monitoring.audit import record_action
from portal.errors import InvalidInput

from .. import qemu
from ..models import Image, ImageState, ImageType
from .core import (
    GiB,
    file_path,
    guard,
    image_datastore,
    lock,
    max_virtual_bytes,
    new_image,
    project_for,
    remove_files,
)

DATABLOCK_FORMATS = ("raw", "qcow2")


@transaction.atomic
def create_datablock(
    actor: User,
    *,
    project: Any,
    name: str,
    size_gb: int,
    datastore: Any = None,
    format: str = "qcow2",
    description: str = "",
    persistent: bool = True,
) -> Image:
    """An empty data block of ``size_gb`` GiB (sparse), READY at once."""

    proj = project_for(actor, project)
    ds = image_datastore(datastore)
    if format not in DATABLOCK_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(DATABLOCK_FORMATS)}", field="format")
    try:
        size_gb = int(size_gb)
    except (TypeError, ValueError):
        raise InvalidInput("size_gb must be a whole number of GiB", field="size_gb") from None
    limit = max_virtual_bytes(proj)
    if size_gb < 1 or size_gb * GiB > limit:
        raise InvalidInput(f"size_gb must be between 1 and {limit // GiB} (the virtual size limit)", field="size_gb")
    img = new_image(
        actor,
        proj,
        ds,
        name=name,
        type=ImageType.DATABLOCK,
        description=description,
        persistent=persistent,
        format=format,
        state=ImageState.READY,
    )
    path = file_path(img, format)
    try:
        qemu.create(path, format, size_gb * GiB)
    except qemu.QemuImgError as exc:
        raise InvalidInput(f"cannot create the data block: {exc.message}", field="size_gb") from exc
    img.path = path
    img.size_bytes = os.stat(path).st_blocks * 512
    img.virtual_size_bytes = size_gb * GiB
    img.sha256 = qemu.sha256_file(path) if format == "qcow2" else ""
    img.progress = 100
    img.save()
    record_action(actor, img, "create", source="datablock", size_gb=size_gb)
    return img


def _derive(actor: User, source: Image, *, name: str, datastore: Any, format: str, verb: str) -> Image:
    ds = image_datastore(datastore if datastore not in (None, "") else source.datastore)
    proj = source.project
    target = new_image(
        actor,
        proj,
        ds,
        name=name,
        type=source.type,
        description=source.description,
        persistent=source.persistent,
        format=format,
        state=ImageState.CONVERTING,
        virtual_size_bytes=source.virtual_size_bytes,
        derived_from=source,
        state_message=f"{verb} of {source.name}",
    )
    target.path = file_path(target, format)
    target.save(update_fields=["path"])
    record_action(actor, target, verb, source=source.pk, format=format)
    from .. import tasks

    pk = target.pk
    task = tasks.clone_image if verb == "clone" else tasks.convert_image
    transaction.on_commit(lambda: task.delay(pk))
    return target


@transaction.atomic
def clone_image(actor: User, image_id: int, *, name: str = "", datastore: Any = None) -> Image:
    """Copy an image (same or another image datastore) into a new image, as a task."""
    source = lock(actor, image_id)
    guard(source, "clone")
    return _derive(
        actor, source, name=name or f"{source.name}-copy", datastore=datastore, format=source.format, verb="clone"
    )


@transaction.atomic
def convert_image(actor: User, image_id: int, *, format: str, name: str = "", datastore: Any = None) -> Image:
    """A new image holding the source converted to ``format`` (raw, qcow2, vmdk, vdi, vhdx), as a task."""
    source = lock(actor, image_id)
    guard(source, "convert")
    if format not in qemu.DISK_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(qemu.DISK_FORMATS)}", field="format")
    if source.format == "iso":
        raise InvalidInput("a CD-ROM image cannot be converted", field="format")
    if format == source.format:
        raise InvalidInput(f"the image is already {format}; use clone for a copy", field="format")
    return _derive(
        actor, source, name=name or f"{source.name}-{format}"[:63], datastore=datastore, format=format, verb="convert"
    )


# --- task side: called by images.tasks, no actor -------------------------------------------


def derive_order(image_id: int) -> tuple[str, str, str, str] | None:
    """(source path, source format, target path, target format) for a CONVERTING derived image,
    or None when there is nothing to do (already finished, failed or deleted)."""
    img = Image.objects.select_related("derived_from").filter(pk=image_id, state=ImageState.CONVERTING).first()
    if img is None or img.derived_from is None:
        return None
    return img.derived_from.path, img.derived_from.format, img.path, img.format


def report_progress(image_id: int, percent: float) -> None:
    """Record a conversion's progress (a conditional update: never moves backwards)."""
    pct = max(0, min(99, int(percent)))
    # the page polls the image's progress partial (htmx), so nothing is pushed here
    Image.objects.filter(pk=image_id, state=ImageState.CONVERTING, progress__lt=pct).update(
        progress=pct,
        updated_at=timezone.now(),  # progress is what the sweeper watches
    )


# --- the sweeper: a conversion whose task was lost is re-driven, then failed ----------------


def _stalled() -> QuerySet[Image]:
    """CONVERTING images that made no progress for ``NEPHELE_IMAGE_DEADLINE_S``."""
    since = timezone.now() - timedelta(seconds=settings.NEPHELE_IMAGE_DEADLINE_S)
    return Image.objects.filter(state=ImageState.CONVERTING, updated_at__lt=since)


def stuck_images() -> list[int]:
    return list(_stalled().order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def sweep_image(image_id: int) -> str:
    """Re-queue a stalled clone, conversion or import (the same task: it is idempotent), or after
    ``NEPHELE_IMAGE_MAX_TRIES`` re-drives move the image to ERROR with the reason."""
    img = _stalled().select_for_update().filter(pk=image_id).first()  # still stalled, under the lock
    if img is None:
        return "moving"
    if img.redrives >= settings.NEPHELE_IMAGE_MAX_TRIES:
        img.state, img.progress = ImageState.ERROR, 0
        img.state_message = (
            f"no progress for {settings.NEPHELE_IMAGE_DEADLINE_S:.0f} s after {img.redrives} re-tries; "
            "delete it and start again"
        )
        img.save()
        record_action(None, img, "convert", result="failed", reason=img.state_message[:200])
        return "failed"
    img.redrives += 1
    img.save(update_fields=["redrives", "updated_at"])
    from .. import tasks

    task = tasks.convert_image if img.derived_from_id is not None else tasks.import_disk
    pk = img.pk
    transaction.on_commit(lambda: task.delay(pk))
    return "re-driven"


@transaction.atomic
def finish_derive(image_id: int, tmp_path: str, error: str = "") -> Image | None:
    """End a clone / conversion: READY with the checked file, or ERROR with the reason.
    Idempotent: an image no longer CONVERTING is left alone (and ``tmp_path`` removed)."""
    img = Image.objects.select_for_update().filter(pk=image_id).first()
    if img is None or img.state != ImageState.CONVERTING:
        remove_files(tmp_path)
        return img
    if not error:
        try:
            fmt, info = qemu.inspect(tmp_path, fmt=img.format)
            img.virtual_size_bytes = info.virtual_size
        except qemu.QemuImgError as exc:
            error = exc.message
    if error:
        remove_files(tmp_path)
        img.state, img.state_message, img.progress = ImageState.ERROR, error, 0
        img.save()
        record_action(None, img, "convert", result="failed", reason=error[:200])
        return img
    os.replace(tmp_path, img.path)
    img.size_bytes = os.stat(img.path).st_blocks * 512
    img.sha256 = qemu.sha256_file(img.path)
    img.state, img.state_message, img.progress = ImageState.READY, "", 100
    img.save()
    record_action(None, img, "ready", format=img.format)
    _after_ready(img)
    return img


def _after_ready(img: Image) -> None:
    """An OVF import's disk joins its template once it is READY."""
    detail = img.import_detail or {}
    if detail.get("template"):
        from .ovf import attach_to_template

        attach_to_template(img)
