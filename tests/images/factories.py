"""Factories of the image tests: READY images backed by a real qcow2 file in the datastore."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from images.models import Image
from images.services import register_file
from storage.models import Datastore


def image_datastore(name: str = "img-ds") -> Datastore:
    ds = Datastore.objects.filter(name=name).first()
    if ds is None:
        path = Path(tempfile.mkdtemp(prefix="nephele-images-"))
        ds = Datastore.objects.create(name=name, kind="image", path=str(path))
    return ds


def ready_image(
    owner: Any,
    project: Any,
    name: str = "img",
    datastore: Datastore | None = None,
    size: str = "16M",
    fmt: str = "qcow2",
) -> Image:
    """A READY image registered through the service (real qemu-img file, quota taken)."""
    ds = datastore or image_datastore()
    path = Path(ds.path) / f"{name}-{Image.objects.count()}.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)
    return register_file(owner, project=project, name=name, datastore=ds, path=str(path))
