"""Helpers of the image tests: real qemu-img files and chunked uploads through the API."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

CHUNK = 4 << 20


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def make_image(path: Path, fmt: str, size: str = "16M", *extra: str) -> Path:
    qemu_img("create", "-q", "-f", fmt, *extra, str(path), size)
    return path


def start_upload(client: Any, project: Any, name: str = "img", **kw: Any) -> dict[str, Any]:
    r = client.post("/api/v1/images/", {"project": project.pk, "name": name, **kw}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def put_chunk(client: Any, pk: int, data: bytes, start: int, total: int) -> Any:
    return client.put(
        f"/api/v1/images/{pk}/upload/",
        data=data,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {start}-{start + len(data) - 1}/{total}",
    )


def upload_file(client: Any, pk: int, path: Path, chunk: int = CHUNK) -> Any:
    """Send ``path`` in chunks; returns the last response."""
    total = path.stat().st_size
    r = None
    with open(path, "rb") as f:
        start = 0
        while start < total:
            data = f.read(chunk)
            r = put_chunk(client, pk, data, start, total)
            if r.status_code != 200:
                return r
            start += len(data)
    return r
