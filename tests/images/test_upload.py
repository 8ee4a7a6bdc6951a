"""Browser / API upload: chunks streamed to disk, constant memory, sparse files kept sparse,
interrupted uploads never READY, abandoned ones cleaned up."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from images.models import Image, ImageState
from images.services import upload
from portal.errors import InvalidInput
from tenants.quotas import QuotaUsage

from .helpers import make_image, put_chunk, start_upload, upload_file

GiB = 1 << 30


PIECE = 1 << 20
PART = 256 << 20  # one request carries 256 MiB: far more than the server may hold


def _piece(offset: int, total: int) -> bytes:
    """1 MiB of a 2 GiB raw disk at ``offset``: zeros, except a marker in the first and last MiB."""
    if offset in (0, total - PIECE):
        return (f"nephele piece {offset} ".encode() * 70000)[:PIECE]
    return bytes(PIECE)


class _PieceStream:
    """A WSGI input that produces ``length`` bytes of the disk from ``start`` on demand (the
    client side never holds a request body either)."""

    def __init__(self, start: int, length: int, total: int) -> None:
        self.pos, self.end, self.total, self.buf = start, start + length, total, b""

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.end - self.pos + len(self.buf)
        while len(self.buf) < size and self.pos < self.end:
            self.buf += _piece(self.pos, self.total)
            self.pos += PIECE
        out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - not used for octet-stream
        return self.read(size)


def _wsgi(method: str, path: str, body: Any, length: int, headers: dict[str, str]) -> tuple[int, Any]:
    """One request through Django's real WSGI handler (middleware, DRF, token auth)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": body, "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(length), **headers,
    }  # fmt: skip
    status: list[str] = []
    # as Django's test client does: the test's transaction must survive the request signals
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = WSGIHandler()(environ, lambda s, h, *a: status.append(s))
        data = b"".join(chunks)
        chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), json.loads(data or b"null")


def test_2gib_sparse_image_uploads_in_chunks_with_constant_memory(member, project, datastore) -> None:
    """2 GiB through the API in 256 MiB requests (Django's WSGI handler, Bearer token): the
    traced memory peak of the whole process stays a small fraction of one request."""
    from tenants import credentials

    total = 2 * GiB
    expected = hashlib.sha256()
    for off in range(0, total, PIECE):
        expected.update(_piece(off, total))
    _token, secret = credentials.create_token(member, name="upload")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    meta = json.dumps({"project": project.pk, "name": "big", "size_bytes": total, "sha256": expected.hexdigest()})
    code, img = _wsgi(
        "POST", "/api/v1/images/", io.BytesIO(meta.encode()), len(meta), {**auth, "CONTENT_TYPE": "application/json"}
    )
    assert code == 201, img

    tracemalloc.start()
    try:
        for start in range(0, total, PART):
            headers = {
                **auth,
                "CONTENT_TYPE": "application/octet-stream",
                "HTTP_CONTENT_RANGE": f"bytes {start}-{start + PART - 1}/{total}",
            }
            code, last = _wsgi(
                "PUT", f"/api/v1/images/{img['id']}/upload/", _PieceStream(start, PART, total), PART, headers
            )
            assert code == 200, last
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert last["state"] == "ready" and last["format"] == "raw", last
    assert last["virtual_size_bytes"] == total and last["sha256"] == expected.hexdigest()
    assert peak < 32 << 20, f"peak {peak} bytes for a 2 GiB upload in 256 MiB requests"
    st = os.stat(Image.objects.get(pk=img["id"]).path)
    assert st.st_size == total
    assert st.st_blocks * 512 < 16 << 20  # zero pieces were skipped: the file is still sparse


def test_chunks_out_of_order_are_refused_and_resume_from_the_server_offset(
    member_client, project, datastore, tmp_path
) -> None:
    src = make_image(tmp_path / "d.qcow2", "qcow2", "8M")
    data = src.read_bytes()
    img = start_upload(member_client, project, size_bytes=len(data))
    r = put_chunk(member_client, img["id"], data[1000:2000], 1000, len(data))
    assert r.status_code == 409 and "0 bytes were received" in r.json()["detail"]
    assert put_chunk(member_client, img["id"], data[:1000], 0, len(data)).status_code == 200
    r = put_chunk(member_client, img["id"], data[1000:], 1000, len(data))
    assert r.status_code == 200 and r.json()["state"] == "ready"


def test_interrupted_upload_never_becomes_ready_and_is_cleaned_up(
    member, member_client, project, datastore, tmp_path
) -> None:
    src = make_image(tmp_path / "d.qcow2", "qcow2", "8M")
    data = src.read_bytes()
    img = start_upload(member_client, project, size_bytes=len(data))
    assert put_chunk(member_client, img["id"], data[:4096], 0, len(data)).status_code == 200
    # the client stops in the middle of a chunk: fewer bytes than announced arrive
    with pytest.raises(InvalidInput, match="chunk ended after 100 of 8192 bytes"):
        upload.receive_chunk(member, img["id"], io.BytesIO(data[4096:4196]), start=4096, length=8192, total=len(data))
    row = Image.objects.get(pk=img["id"])
    assert row.state == ImageState.UPLOADING and row.uploaded_bytes == 4096
    assert Path(upload.part_path(row)).stat().st_size == 4096
    # finishing early is refused
    with pytest.raises(Exception, match="4096 of"):
        upload.finish_upload(member, img["id"])
    # an hour of silence is not yet abandonment; six hours is
    assert upload.cleanup_uploads() == 0
    Image.objects.filter(pk=row.pk).update(updated_at=timezone.now() - timedelta(hours=7))
    assert upload.cleanup_uploads() == 1
    row.refresh_from_db()
    assert row.state == ImageState.ERROR and "abandoned" in row.state_message
    assert list(Path(datastore.path).iterdir()) == []
    assert not Image.objects.filter(state=ImageState.READY).exists()


def test_orphan_part_files_are_removed(datastore) -> None:
    orphan = Path(datastore.path) / "0b9f0a5e-0000-4000-8000-000000000000.part"
    orphan.write_bytes(b"x")
    old = (timezone.now() - timedelta(hours=7)).timestamp()
    os.utime(orphan, (old, old))
    upload.cleanup_uploads()
    assert not orphan.exists()


def test_whole_file_in_one_request_without_content_range(member_client, project, datastore, tmp_path) -> None:
    src = make_image(tmp_path / "d.vdi", "vdi", "8M")
    img = start_upload(member_client, project)
    r = member_client.put(
        f"/api/v1/images/{img['id']}/upload/", data=src.read_bytes(), content_type="application/octet-stream"
    )
    assert r.status_code == 200 and r.json()["state"] == "ready" and r.json()["format"] == "vdi"


def test_cdrom_must_be_an_iso(member_client, project, datastore, tmp_path) -> None:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3)
    iso.add_fp(io.BytesIO(b"hello\n"), 6, "/HELLO.TXT;1")
    path = tmp_path / "cd.iso"
    iso.write(str(path))
    iso.close()
    img = start_upload(member_client, project, name="cd", type="cdrom")
    r = upload_file(member_client, img["id"], path)
    assert r.status_code == 200 and r.json()["format"] == "iso"
    raw = make_image(tmp_path / "notcd.raw", "raw", "1M")
    img = start_upload(member_client, project, name="notcd", type="cdrom")
    r = upload_file(member_client, img["id"], raw)
    assert r.status_code == 400 and "must be an ISO 9660 file" in r.json()["detail"]


def test_upload_consumes_the_images_quota_and_delete_releases_it(
    member_client, project, datastore, django_capture_on_commit_callbacks
) -> None:
    from tenants.quotas import set_limit

    set_limit(project, "images", 1)
    img = start_upload(member_client, project, name="one")
    r = member_client.post("/api/v1/images/", {"project": project.pk, "name": "two"}, format="json")
    assert r.status_code == 403 and "images 1 of 1 used" in r.json()["detail"]
    assert Image.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert member_client.delete(f"/api/v1/images/{img['id']}/").status_code == 204
    assert QuotaUsage.objects.get(project=project, user__isnull=True, resource="images").used == 0
    assert list(Path(datastore.path).iterdir()) == []


def test_bad_metadata_is_refused_naming_the_field(member_client, project, datastore) -> None:
    r = member_client.post("/api/v1/images/", {"project": project.pk, "name": "x", "sha256": "nothex"}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "sha256"
    r = member_client.post("/api/v1/images/", {"project": project.pk, "name": "bad name!"}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = member_client.post(
        "/api/v1/images/", {"project": project.pk, "name": "x", "size_bytes": 1 << 62}, format="json"
    )
    assert r.status_code == 400 and r.json()["field"] == "size_bytes"
    assert not Image.objects.exists()


def test_unknown_total_then_an_empty_request_finalises(member_client, project, datastore, tmp_path) -> None:
    data = make_image(tmp_path / "d.qcow2", "qcow2", "8M").read_bytes()
    img = start_upload(member_client, project)
    for start in range(0, len(data), 100_000):
        part = data[start : start + 100_000]
        r = member_client.put(
            f"/api/v1/images/{img['id']}/upload/", data=part, content_type="application/octet-stream",
            HTTP_CONTENT_RANGE=f"bytes {start}-{start + len(part) - 1}/*",
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["state"] == "uploading"
    r = member_client.put(f"/api/v1/images/{img['id']}/upload/", data=b"", content_type="application/octet-stream")
    assert r.status_code == 200 and r.json()["state"] == "ready" and r.json()["format"] == "qcow2"
