"""Browser upload: an image row in UPLOADING with a ``<uuid>.part`` file, chunks written at
their offset (1 MiB pieces, all-zero pieces skipped so sparse images stay sparse), the sha256
kept incrementally, and a final step that checks the file and makes the image READY — or
ERROR with the reason and no file left.

Chunks arrive in order: a chunk's start must equal the bytes received so far (409 with the
expected offset otherwise, so a client resumes where the server is). The image row is locked
while a chunk is written, so two concurrent chunks cannot interleave.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import timedelta
from typing import IO, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from monitoring.audit import record_action
from portal.errors import Conflict, InvalidInput
from tenants.querysets import Actor

from .. import qemu
from ..models import Image, ImageState, ImageType
from .core import (
    file_path,
    guard,
    image_datastore,
    lock,
    max_virtual_bytes,
    new_image,
    part_path,
    project_for,
    remove_files,
)

PIECE = 1 << 20
SLACK = 64 << 20  # an image file may exceed its virtual size by its metadata
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# Incremental sha256 of uploads in progress in this process: image pk → (offset, hash).
# Another process (or a restart) rebuilds it from the .part file, so it is only a cache.
_HASHES: dict[int, tuple[int, Any]] = {}


@transaction.atomic
def create_upload(
    actor: User,
    *,
    project: Any,
    name: str,
    datastore: Any = None,
    type: str = "os",
    description: str = "",
    persistent: bool = False,
    size_bytes: int = 0,
    sha256: str = "",
    source_name: str = "",
) -> Image:
    """Create an image in UPLOADING with an empty ``<uuid>.part`` in its datastore. ``size_bytes``
    (the file's size, optional) and ``sha256`` (optional) are checked when the upload ends."""
    proj = project_for(actor, project)
    ds = image_datastore(datastore)
    sha256 = (sha256 or "").strip().lower()
    if sha256 and not _SHA256.match(sha256):
        raise InvalidInput("sha256 must be 64 hexadecimal digits", field="sha256")
    size_bytes = int(size_bytes or 0)
    if size_bytes < 0:
        raise InvalidInput("size_bytes must be ≥ 0", field="size_bytes")
    free = _free_bytes(ds.path)
    if size_bytes and free is not None and size_bytes > free:
        raise InvalidInput(
            f"size_bytes {size_bytes} is over the datastore's free space ({free} bytes)", field="size_bytes"
        )
    img = new_image(
        actor,
        proj,
        ds,
        name=name,
        type=type,
        description=description,
        persistent=persistent,
        state=ImageState.UPLOADING,
        expected_sha256=sha256,
        upload_size_bytes=size_bytes,
        source_name=os.path.basename(str(source_name or ""))[:255],
    )
    img.path = part_path(img)
    img.save(update_fields=["path"])
    with open(img.path, "wb"):
        pass
    # A rollback after this point leaves an orphan .part; cleanup_uploads removes those.
    record_action(actor, img, "create", source="upload")
    return img


def _free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def parse_range(header: str | None, length: int | None) -> tuple[int, int, int | None]:
    """``Content-Range: bytes start-end/total`` → (start, length, total). Without the header the
    body is the whole file (start 0, total = length)."""
    if not header:
        if length is None:
            raise InvalidInput("Content-Length or Content-Range is required", field="Content-Range")
        return 0, length, length
    m = _RANGE.match(header.strip())
    if not m:
        raise InvalidInput("Content-Range must look like 'bytes START-END/TOTAL'", field="Content-Range")
    start, end = int(m.group(1)), int(m.group(2))
    total = None if m.group(3) == "*" else int(m.group(3))
    if end < start or (total is not None and end >= total):
        raise InvalidInput(f"Content-Range {header} is not a valid range", field="Content-Range")
    if length is not None and length != end - start + 1:
        raise InvalidInput(f"Content-Length {length} does not match Content-Range {header}", field="Content-Length")
    return start, end - start + 1, total


def _hasher(img: Image, path: str) -> Any:
    cached = _HASHES.get(img.pk)
    if cached is not None and cached[0] == img.uploaded_bytes:
        return cached[1]
    h = hashlib.sha256()  # rebuild from what is on disk (another process took the earlier chunks)
    remaining = img.uploaded_bytes
    with open(path, "rb") as f:
        while remaining > 0:
            block = f.read(min(PIECE, remaining))
            if not block:
                block = bytes(min(PIECE, remaining))  # sparse tail not yet extended
            h.update(block)
            remaining -= len(block)
    return h


def receive_chunk(
    actor: Actor, image_id: int, stream: IO[bytes], *, start: int, length: int, total: int | None
) -> Image:
    """Write ``length`` bytes read from ``stream`` at ``start`` in the image's ``.part`` file.
    When the chunk ends the file (``start + length == total``) the upload is finalised."""
    with transaction.atomic():
        img = lock(actor, image_id)
        guard(img, "upload")
        if start != img.uploaded_bytes:
            raise Conflict(
                f"chunk starts at {start} but {img.uploaded_bytes} bytes were received", field="Content-Range"
            )
        if img.upload_size_bytes and total is not None and total != img.upload_size_bytes:
            raise InvalidInput(
                f"total {total} does not match the declared size_bytes {img.upload_size_bytes}", field="Content-Range"
            )
        limit = max_virtual_bytes(img.project)
        if start + length > limit + SLACK:
            _fail(img, f"the file is larger than the virtual size limit of {limit} bytes ({limit / 2**30:.1f} GiB)")
            return img
        path = part_path(img)
        h = _hasher(img, path)
        written = _write(stream, path, start, length, h)
        if written != length:  # the client stopped: keep what arrived, stay UPLOADING
            _HASHES.pop(img.pk, None)
            os.truncate(path, start)
            raise InvalidInput(f"chunk ended after {written} of {length} bytes", field="Content-Length")
        img.uploaded_bytes = start + length
        size = total or img.upload_size_bytes
        img.progress = min(99, int(100 * img.uploaded_bytes / size)) if size else 0
        img.save(update_fields=["uploaded_bytes", "progress", "updated_at"])
        _HASHES[img.pk] = (img.uploaded_bytes, h)
        done = total is not None and img.uploaded_bytes == total
    if done:
        return finish_upload(actor, image_id)
    return img


def _write(stream: IO[bytes], path: str, start: int, length: int, h: Any) -> int:
    """Copy ``length`` bytes from ``stream`` to ``path`` at ``start`` in 1 MiB pieces, hashing
    them and seeking over all-zero pieces (the file stays sparse)."""
    done = 0
    with open(path, "r+b") as f:
        f.truncate(start)  # anything past ``start`` is from an aborted chunk
        f.seek(start)
        while done < length:
            block = stream.read(min(PIECE, length - done))
            if not block:
                break
            h.update(block)
            if block.count(0) == len(block):
                f.seek(len(block), os.SEEK_CUR)
            else:
                f.write(block)
            done += len(block)
        f.truncate(start + done)  # a skipped zero tail still counts in the size
    return done


def finish_upload(actor: Actor, image_id: int) -> Image:
    """Check the received file (size, checksum, format probed then pinned, safety) and make
    the image READY as ``<uuid>.<format>``, or ERROR with the reason and the file removed."""
    with transaction.atomic():
        img = lock(actor, image_id)
        guard(img, "upload")
        if img.upload_size_bytes and img.uploaded_bytes != img.upload_size_bytes:
            raise Conflict(
                f"{img.uploaded_bytes} of {img.upload_size_bytes} bytes received; send the rest first",
                field="size_bytes",
            )
        if img.uploaded_bytes == 0:
            raise Conflict("nothing was uploaded", field="file")
        path = part_path(img)
        cached = _HASHES.pop(img.pk, None)
        h = cached[1] if cached and cached[0] == img.uploaded_bytes else _hasher(img, path)
        digest = h.hexdigest()
        if img.expected_sha256 and digest != img.expected_sha256:
            _fail(img, f"checksum mismatch: the file's sha256 is {digest}, {img.expected_sha256} was declared")
            return img
        try:
            fmt, info = qemu.inspect(path, max_virtual_bytes=max_virtual_bytes(img.project))
            if fmt == "iso" and img.type not in (ImageType.CDROM, ImageType.CONTEXT):
                fmt = "raw"
            if img.type == ImageType.CDROM and fmt != "iso":
                raise qemu.UnsafeImage(f"a CD-ROM image must be an ISO 9660 file, this one is {fmt}")
            checked = qemu.check(path, fmt)
            if not checked.ok:
                raise qemu.UnsafeImage(f"qemu-img check found {checked.corruptions} corruptions {checked.message}")
        except qemu.QemuImgError as exc:
            _fail(img, f"image refused: {exc.message}")
            return img
        final = file_path(img, fmt)
        os.replace(path, final)
        img.path = final
        img.format = fmt
        img.size_bytes = os.stat(final).st_blocks * 512
        img.virtual_size_bytes = info.virtual_size
        img.sha256 = digest
        img.state = ImageState.READY
        img.state_message = ""
        img.progress = 100
        img.save()
        record_action(actor, img, "upload", format=fmt, size=img.uploaded_bytes)
    return img


def _fail(img: Image, reason: str) -> None:
    """ERROR with ``reason``; the partial file is removed (caller holds the row lock)."""
    _HASHES.pop(img.pk, None)
    remove_files(part_path(img))
    img.state = ImageState.ERROR
    img.state_message = reason
    img.path = ""
    img.progress = 0
    img.save(update_fields=["state", "state_message", "path", "progress", "updated_at"])
    record_action(None, img, "upload", result="refused", reason=reason[:200])


def cleanup_uploads(max_age: timedelta = timedelta(hours=6)) -> int:
    """Uploads untouched for ``max_age`` become ERROR and lose their ``.part`` file; ``.part``
    files without an image row are removed. Returns how many images were failed."""
    cutoff = timezone.now() - max_age
    failed = 0
    for pk in Image.objects.filter(state=ImageState.UPLOADING, updated_at__lt=cutoff).values_list("pk", flat=True):
        with transaction.atomic():
            img = Image.objects.select_for_update().filter(pk=pk, state=ImageState.UPLOADING).first()
            if img is None or img.updated_at >= cutoff:
                continue
            _fail(img, f"upload abandoned: no data for {int(max_age.total_seconds() // 60)} minutes")
            failed += 1
    _remove_orphan_parts(cutoff)
    return failed


def _remove_orphan_parts(cutoff: Any) -> None:
    from storage.models import Datastore, DatastoreKind

    live = {str(u) for u in Image.objects.filter(state=ImageState.UPLOADING).values_list("uuid", flat=True)}
    for ds in Datastore.objects.filter(kind=DatastoreKind.IMAGE):
        try:
            entries = list(os.scandir(ds.path))
        except OSError:
            continue
        for entry in entries:
            stale = entry.name.endswith(".part") and entry.name[:-5] not in live
            if stale and entry.stat().st_mtime < cutoff.timestamp():
                remove_files(entry.path)
