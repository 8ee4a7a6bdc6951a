"""Host-side disk work, run by the agent or a storage task (no ORM): overlays, copies, empty
disks, and the ``qemu-img`` operations on volumes (create, convert, resize, snapshots).

Every function is idempotent: a disk that exists is left alone, a removed file stays removed,
a snapshot that is already there (or already gone) is not an error. Formats are always given
to ``qemu-img`` (``-f`` / ``-F``), never probed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from specs import DiskSpec, DomainSpec, DriverError

QEMU_IMG = "qemu-img"
TIMEOUT_S = 3600


class StorageError(DriverError):
    """A ``qemu-img`` or file operation failed; the message is the tool's own."""


F = TypeVar("F", bound=Callable[..., Any])


def _file_errors(fn: F) -> F:
    """File-system errors become StorageError (callers handle DriverErrors)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            raise StorageError(f"{fn.__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def qemu_img(*args: str) -> str:
    """Run ``qemu-img args…``; its stdout, or StorageError with its stderr."""
    try:
        done = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"qemu-img {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise StorageError(f"qemu-img {args[0]}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def info(path: str, fmt: str) -> dict[str, Any]:
    """``qemu-img info`` of ``path`` read as ``fmt`` (``-U``: also while a guest holds it)."""
    out: dict[str, Any] = json.loads(qemu_img("info", "-U", "-f", fmt, "--output=json", path))
    return out


def virtual_size(path: str, fmt: str) -> int:
    return int(info(path, fmt).get("virtual-size", 0))


def _tmp(path: str) -> str:
    return f"{path}.part"


@_file_errors
def create_empty(path: str, fmt: str, size_bytes: int) -> None:
    """An empty disk image of ``size_bytes`` (sparse). Idempotent."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    qemu_img("create", "-q", "-f", fmt, _tmp(path), str(size_bytes))
    os.replace(_tmp(path), path)


@_file_errors
def create_overlay(path: str, backing: str, backing_format: str, size_bytes: int = 0) -> None:
    """A qcow2 copy-on-write overlay on ``backing`` (grown to ``size_bytes`` if larger). Idempotent."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    args = ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backing_format, _tmp(path)]
    if size_bytes and size_bytes > virtual_size(backing, backing_format):
        args.append(str(size_bytes))
    qemu_img(*args)
    os.replace(_tmp(path), path)


@_file_errors
def convert(src: str, src_format: str, dst: str, dst_format: str, size_bytes: int = 0) -> None:
    """A full copy of ``src`` as ``dst`` in ``dst_format`` (grown to ``size_bytes`` if larger).

    Written under a temporary name and renamed, so a half-written copy is never taken for a
    finished one. Idempotent.
    """
    if os.path.exists(dst):
        return
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    tmp = _tmp(dst)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    qemu_img("convert", "-U", "-q", "-f", src_format, "-O", dst_format, src, tmp)
    if size_bytes and size_bytes > virtual_size(tmp, dst_format):
        qemu_img("resize", "-q", "-f", dst_format, tmp, str(size_bytes))
    os.replace(tmp, dst)


@_file_errors
def resize(path: str, fmt: str, size_bytes: int) -> None:
    """Grow the image to ``size_bytes``; nothing when it is that large already."""
    if virtual_size(path, fmt) >= size_bytes:
        return
    qemu_img("resize", "-q", "-f", fmt, path, str(size_bytes))


def snapshot_tags(path: str) -> set[str]:
    """The internal snapshots of a qcow2 image."""
    return {s.get("name", "") for s in info(path, "qcow2").get("snapshots", [])}


@_file_errors
def snapshot_create(path: str, tag: str) -> None:
    if tag not in snapshot_tags(path):
        qemu_img("snapshot", "-q", "-c", tag, path)


@_file_errors
def snapshot_apply(path: str, tag: str) -> None:
    if tag not in snapshot_tags(path):
        raise StorageError(f"snapshot {tag} is not in {os.path.basename(path)}")
    qemu_img("snapshot", "-q", "-a", tag, path)


@_file_errors
def snapshot_delete(path: str, tag: str) -> None:
    if tag in snapshot_tags(path):
        qemu_img("snapshot", "-q", "-d", tag, path)


@_file_errors
def remove(path: str) -> None:
    """Delete the file (and its directory if that becomes empty). Idempotent."""
    for p in (path, _tmp(path)):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(p)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def prepare_disk(disk: DiskSpec) -> None:
    """Make the file ``disk`` describes, if it needs making."""
    if not disk.path:
        return
    if disk.backing:
        create_overlay(disk.path, disk.backing, disk.backing_format or "raw", disk.create_size_bytes)
    elif disk.copy_from:
        convert(disk.copy_from, disk.backing_format or "raw", disk.path, disk.format, disk.create_size_bytes)
    elif disk.create_size_bytes:
        create_empty(disk.path, disk.format, disk.create_size_bytes)
    elif disk.device != "cdrom" and not Path(disk.path).exists():  # a context seed may come later
        raise StorageError(f"disk {disk.target}: {disk.path} does not exist on the host")


@_file_errors
def prepare_disks(uri: str, domain: DomainSpec) -> None:
    """Before boot (PROLOG): create the overlays, copies and empty disks ``domain.disks`` need. Idempotent."""
    for disk in domain.disks:
        prepare_disk(disk)


@_file_errors
def release_disks(uri: str, domain: DomainSpec, *, terminate: bool) -> None:
    """After the domain is gone (EPILOG): on terminate, remove the VM's volatile files (its
    overlays, copies and empty disks), so a non-persistent image is clean for the next VM.
    Persistent images and volumes are never removed. Idempotent."""
    if not terminate:
        return
    for disk in domain.disks:
        if disk.delete_on_release and disk.path:
            remove(disk.path)
