"""register_file: adopting a file already in an image datastore (used by "save a VM disk")."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from images.models import Image, ImageState
from images.services import register_file
from portal.errors import InvalidInput
from tenants.quotas import QuotaUsage


def test_register_qcow2_becomes_ready_with_pinned_format(member: Any, project: Any, datastore: Any) -> None:
    path = Path(datastore.path) / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    img = register_file(member, project=project, name="saved", datastore=datastore, path=str(path))
    assert img.state == ImageState.READY
    assert img.format == "qcow2" and img.virtual_size_bytes == 64 << 20
    assert len(img.sha256) == 64 and img.path == str(path.resolve())
    assert QuotaUsage.objects.get(project=project, user__isnull=True, resource="images").used == 1


def test_register_refuses_backing_file_and_outside_paths(
    member: Any, project: Any, datastore: Any, tmp_path: Any
) -> None:
    bad = Path(datastore.path) / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(bad)], check=True)
    with pytest.raises(InvalidInput, match="backing file"):
        register_file(member, project=project, name="bad", datastore=datastore, path=str(bad))
    outside = tmp_path / "elsewhere.raw"
    outside.write_bytes(b"\0" * 4096)
    with pytest.raises(InvalidInput, match="not a file inside"):
        register_file(member, project=project, name="bad2", datastore=datastore, path=str(outside))
    with pytest.raises(InvalidInput, match="not a file inside"):
        register_file(
            member, project=project, name="bad3", datastore=datastore, path=f"{datastore.path}/../elsewhere.raw"
        )
    assert not Image.objects.exists()
