"""Fixtures and helpers of the volume and VM-disk tests: real datastores in temporary
directories, real images made with ``qemu-img`` and adopted by the image manager's
``register_file``, and Celery run eagerly in-process (the Celery-over-Redis path itself is
exercised in ``test_vm_disks.py::test_overlay_made_by_the_real_agent``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.models import Datastore

MIB = 1024**2


@pytest.fixture
def image_ds(db: Any, tmp_path: Path) -> Datastore:
    path = tmp_path / "image-ds"
    path.mkdir()
    return Datastore.objects.create(name="images", kind="image", path=str(path), free_bytes=10**12, total_bytes=10**12)


@pytest.fixture
def system_ds(db: Any, tmp_path: Path) -> Datastore:
    path = tmp_path / "system-ds"
    path.mkdir()
    return Datastore.objects.create(name="system", kind="system", path=str(path), free_bytes=10**12, total_bytes=10**12)


def make_image(actor: Any, project: Any, ds: Datastore, name: str = "base", *, size: int = 64 * MIB,
               type: str = "os", persistent: bool = False, fmt: str = "qcow2", pattern: int = 0) -> Any:  # fmt: skip
    """A real image file (its first MiB filled with byte ``pattern``) registered through the image manager."""
    from images import services as images

    path = Path(ds.path) / f"{name}.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), str(size)], check=True)
    if pattern:
        write_pattern(str(path), fmt, 0, pattern)
    return images.register_file(actor, project=project, name=name, datastore=ds, path=str(path), type=type,
                                persistent=persistent)  # fmt: skip


def write_pattern(path: str, fmt: str, offset: int, pattern: int, length: int = MIB) -> None:
    """Write ``length`` bytes of ``pattern`` into the guest-visible content of an image (qemu-io, as a guest would)."""
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P 0x{pattern:02x} {offset} {length}", path],
                   check=True, capture_output=True)  # fmt: skip


def read_at(path: str, fmt: str, offset: int, length: int) -> bytes:
    """The guest-visible bytes of an image (``qemu-img dd`` with the format pinned)."""
    out = Path(path).parent / "read.bin"
    subprocess.run(["qemu-img", "dd", "-f", fmt, "-O", "raw", f"if={path}", f"of={out}", "bs=1",
                    f"skip={offset}", f"count={length}"], check=True, capture_output=True)  # fmt: skip
    data = out.read_bytes()[:length]  # qemu-img dd may pad the output
    out.unlink()
    return data


def qemu_info(path: str, fmt: str = "qcow2") -> dict[str, Any]:
    import json

    out = subprocess.run(["qemu-img", "info", "-U", "-f", fmt, "--output=json", path], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture
def eager(django_capture_on_commit_callbacks: Any) -> Iterator[Any]:
    """Tasks queued on commit run at once, in-process (Celery eager mode)."""
    from portal.celery import app

    app.conf.task_always_eager = True
    try:
        yield django_capture_on_commit_callbacks
    finally:
        app.conf.task_always_eager = False


def run(eager: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a service and run the tasks it queued (and those they queue) before returning."""
    with eager(execute=True):
        return fn(*args, **kwargs)
