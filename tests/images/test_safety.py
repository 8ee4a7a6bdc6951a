"""Crafted malicious images are refused at upload, with the reason and nothing left behind
(no file in the datastore, no READY row). Real qemu-img throughout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from images import qemu
from images.models import Image, ImageState
from tenants.quotas import set_limit

from .helpers import make_image, qemu_img, start_upload, upload_file


def _refused(member_client: Any, project: Any, datastore: Any, path: Path, reason: str, **kw: Any) -> None:
    img = start_upload(member_client, project, name="evil", **kw)
    r = upload_file(member_client, img["id"], path)
    assert r.status_code == 400, r.content
    assert reason in r.json()["detail"]
    row = Image.objects.get(pk=img["id"])
    assert row.state == ImageState.ERROR and reason in row.state_message
    assert not Image.objects.filter(state=ImageState.READY).exists()
    assert list(Path(datastore.path).iterdir()) == []  # nothing left behind


def test_qcow2_with_backing_file_to_a_host_file_is_refused(member_client, project, datastore, tmp_path) -> None:
    evil = make_image(tmp_path / "evil.qcow2", "qcow2", "1M", "-b", "/etc/passwd", "-F", "raw")
    _refused(member_client, project, datastore, evil, "backing file (/etc/passwd)")


def test_qcow2_with_external_data_file_is_refused(member_client, project, datastore, tmp_path) -> None:
    evil = make_image(tmp_path / "evil.qcow2", "qcow2", "1M", "-o", f"data_file={tmp_path}/data.raw")
    _refused(member_client, project, datastore, evil, "external data file")


def test_vmdk_descriptor_with_extent_outside_the_datastore_is_refused(
    member_client, project, datastore, tmp_path
) -> None:
    evil = tmp_path / "evil.vmdk"
    evil.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
        'RW 2048 FLAT "/etc/passwd" 0\n\nddb.adapterType = "ide"\n'
    )
    _refused(member_client, project, datastore, evil, "VMDK descriptor references other files (/etc/passwd)")


def test_vmdk_extent_check_on_pinned_info(tmp_path) -> None:
    """The qemu-img side of the check: a flat VMDK's extent is another file."""
    make_image(tmp_path / "flat.vmdk", "vmdk", "1M", "-o", "subformat=monolithicFlat")
    info = qemu.info(tmp_path / "flat.vmdk", "vmdk")
    assert [Path(e).name for e in info.extents] == ["flat-flat.vmdk"]
    with pytest.raises(qemu.UnsafeImage, match="VMDK extent references another file"):
        qemu.check_safe(tmp_path / "flat.vmdk", info)


def test_huge_virtual_size_is_refused(member_client, project, datastore, tmp_path, settings) -> None:
    settings.NEPHELE_IMAGE_MAX_VIRTUAL_GB = 10
    huge = make_image(tmp_path / "huge.qcow2", "qcow2", "100T")
    _refused(member_client, project, datastore, huge, "over the limit of 10737418240 bytes")


def test_virtual_size_over_the_remaining_volume_quota_is_refused(member_client, project, datastore, tmp_path) -> None:
    set_limit(project, "volume_gb", 1)
    big = make_image(tmp_path / "big.qcow2", "qcow2", "2G")
    _refused(member_client, project, datastore, big, "over the limit of 1073741824 bytes")


def test_checksum_mismatch_is_refused(member_client, project, datastore, tmp_path) -> None:
    ok = make_image(tmp_path / "ok.qcow2", "qcow2", "1M")
    _refused(member_client, project, datastore, ok, "checksum mismatch", sha256="0" * 64)


def test_unsupported_format_is_refused(member_client, project, datastore, tmp_path) -> None:
    vpc = make_image(tmp_path / "disk.vhd", "vpc", "1M")
    _refused(member_client, project, datastore, vpc, "format 'vpc' is not accepted")


def test_raw_file_is_never_reinterpreted_once_pinned(tmp_path) -> None:
    """Format pinned: a raw image holding a qcow2 header stays raw when read with -f raw."""
    q = make_image(tmp_path / "inner.qcow2", "qcow2", "1M", "-b", "/etc/passwd", "-F", "raw")
    info = qemu.info(q, "raw")
    assert info.format == "raw" and info.backing_file is None


@pytest.mark.parametrize("fmt", ["raw", "qcow2", "vmdk", "vdi", "vhdx"])
def test_every_accepted_format_is_detected_and_becomes_ready(member_client, project, datastore, tmp_path, fmt) -> None:
    src = make_image(tmp_path / "src.raw", "raw", "4M")
    with open(src, "r+b") as f:
        f.write(b"nephele" * 1000)
    disk = tmp_path / f"disk.{fmt}"
    qemu_img("convert", "-f", "raw", "-O", fmt, str(src), str(disk))
    img = start_upload(member_client, project, name=f"ok-{fmt}", filename="../../etc/passwd")
    r = upload_file(member_client, img["id"], disk)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["state"] == "ready" and body["format"] == fmt and body["virtual_size_bytes"] == 4 << 20
    row = Image.objects.get(pk=img["id"])
    assert row.path == str(Path(datastore.path).resolve() / f"{row.uuid}.{fmt}")  # never the sent name
    assert row.source_name == "passwd"
    assert [p.name for p in Path(datastore.path).iterdir()] == [f"{row.uuid}.{fmt}"]
