"""``nephele image`` through the real entry point against a live server: a chunked upload with
the file's sha256, a resumed upload continuing from the server's offset, a file the safety
checks refuse, attributes, sharing, conversion with --wait (the real worker and qemu-img), and
deletion that asks first."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from images.models import Image
from storage.models import Datastore
from tests.factories import ProjectFactory

from .conftest import nephele, ok_json

MIB = 1 << 20


@pytest.fixture
def image_ds(cloud: dict[str, Any]) -> Datastore:
    path = cloud["tmp"] / "image-ds"
    path.mkdir()
    return Datastore.objects.create(name="images", kind="image", path=str(path), free_bytes=10**12, total_bytes=10**12)


def _raw_file(cloud: dict[str, Any], name: str, size: int) -> Path:
    path = cloud["tmp"] / name
    path.write_bytes(os.urandom(size))
    return path


def test_upload_in_chunks_then_attributes_sharing_and_delete(cloud: dict[str, Any], image_ds: Datastore) -> None:
    path = _raw_file(cloud, "disk.raw", 3 * MIB + 123)
    done = nephele(cloud, "-o", "json", "image", "upload", str(path), "--chunk-mib", "1", "--name", "base")
    assert done.returncode == 0, done.stderr
    img = json.loads(done.stdout)
    assert img["state"] == "ready" and img["format"] == "raw", img
    assert img["uploaded_bytes"] == 3 * MIB + 123 and img["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"image {img['id']} created" in done.stderr
    assert [i["id"] for i in ok_json(cloud, "image", "list", "--filter", "state=ready")] == [img["id"]]
    assert ok_json(cloud, "image", "list", "--filter", "state=error") == []

    changed = ok_json(cloud, "image", "update", str(img["id"]), "--description", "the base", "--persistent")
    assert changed["description"] == "the base" and changed["persistent"] is True
    other = ProjectFactory()
    shares = ok_json(cloud, "image", "share", str(img["id"]), "--with-project", str(other.pk))
    assert shares == {"projects": [other.pk], "users": []}
    assert ok_json(cloud, "image", "shares", str(img["id"]))["projects"] == [other.pk]
    assert ok_json(cloud, "image", "unshare", str(img["id"]), "--with-project", str(other.pk))["projects"] == []
    both = nephele(cloud, "image", "share", str(img["id"]), "--with-project", "1", "--with-user", "x")
    assert both.returncode == 2 and "one recipient" in both.stderr
    assert ok_json(cloud, "image", "disable", str(img["id"]))["state"] == "disabled"
    assert ok_json(cloud, "image", "enable", str(img["id"]))["state"] == "ready"

    declined = nephele(cloud, "image", "delete", str(img["id"]), stdin="n\n")
    assert declined.returncode == 1 and Image.objects.filter(pk=img["id"]).exists()
    assert ok_json(cloud, "image", "delete", str(img["id"]), "--yes") == [{"id": img["id"], "result": "deleted"}]
    assert not Image.objects.filter(pk=img["id"]).exists()


def test_an_interrupted_upload_resumes_from_the_servers_offset(cloud: dict[str, Any], image_ds: Datastore) -> None:
    path = _raw_file(cloud, "big.raw", 3 * MIB)
    data = path.read_bytes()
    # a client that sent the first MiB and died (the server has 1 MiB: uploaded_bytes)
    auth = {"Authorization": f"Bearer {cloud['token']}"}
    made = requests.post(f"{cloud['url']}/api/v1/images/", headers=auth, timeout=30, json={
        "project": cloud["project"], "name": "resumed", "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
    assert made.status_code == 201, made.text
    pk = made.json()["id"]
    first = requests.put(f"{cloud['url']}/api/v1/images/{pk}/upload/", data=data[:MIB], timeout=30, headers={
        **auth, "Content-Type": "application/octet-stream", "Content-Range": f"bytes 0-{MIB - 1}/{len(data)}"})  # fmt: skip
    assert first.status_code == 200 and first.json()["uploaded_bytes"] == MIB

    wrong = _raw_file(cloud, "other.raw", 2 * MIB)
    refused = nephele(cloud, "image", "upload", str(wrong), "--resume", str(pk))
    assert refused.returncode == 4 and "field file" in refused.stderr, refused.stderr

    done = nephele(cloud, "-o", "json", "image", "upload", str(path), "--resume", str(pk), "--chunk-mib", "1")
    assert done.returncode == 0, done.stderr
    assert f"resuming at byte {MIB}" in done.stderr
    img = json.loads(done.stdout)
    # the server checked the whole file's sha256 declared at the start: the resumed bytes are right
    assert img["state"] == "ready" and img["uploaded_bytes"] == len(data)
    again = nephele(cloud, "image", "upload", str(path), "--resume", str(pk))
    assert again.returncode == 4 and "not uploading" in again.stderr


def test_a_file_the_safety_checks_refuse_exits_naming_the_field(cloud: dict[str, Any], image_ds: Datastore) -> None:
    path = _raw_file(cloud, "not-an-iso.iso", MIB)
    done = nephele(cloud, "image", "upload", str(path), "--type", "cdrom")
    assert done.returncode == 1 and "field file" in done.stderr and "400" in done.stderr, done.stderr
    assert Image.objects.get(name="not-an-iso").state == "error"
    empty = cloud["tmp"] / "empty.raw"
    empty.write_bytes(b"")
    assert nephele(cloud, "image", "upload", str(empty)).returncode == 2
    assert nephele(cloud, "image", "upload", str(cloud["tmp"] / "missing.raw")).returncode == 2


def test_convert_waits_with_a_progress_bar(cloud: dict[str, Any], image_ds: Datastore, agent: Any) -> None:
    path = _raw_file(cloud, "src.raw", 2 * MIB)
    src = ok_json(cloud, "image", "upload", str(path))
    bad = nephele(cloud, "image", "convert", str(src["id"]), "--format", "bogus")
    assert bad.returncode == 1 and "field format" in bad.stderr, bad.stderr
    new = ok_json(cloud, "image", "convert", str(src["id"]), "--format", "qcow2", "--wait")
    assert new["state"] == "ready" and new["format"] == "qcow2" and new["derived_from"] == src["id"], new
    block = ok_json(cloud, "image", "datablock", "scratch", "--size-gb", "1")
    assert block["type"] == "datablock" and block["state"] == "ready"
