"""A typed wrapper over the real ``qemu-img``, and the safety checks an uploaded image passes.

No Django here (CONVENTIONS §3): plain paths in, frozen dataclasses out, ``QemuImgError`` /
``UnsafeImage`` raised with the reason. The format is probed (``qemu-img info`` without ``-f``)
only once, on the uploaded file inside the datastore; every later call pins it with ``-f``,
so a raw image whose bytes look like a qcow2 header can never be reinterpreted.

``qemu-img`` runs with an address-space and CPU limit (a crafted image must not exhaust the
host while being inspected, the mitigation OpenStack applies to the same command).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QEMU_IMG = "qemu-img"
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx")
FORMATS = (*DISK_FORMATS, "iso")
# qemu-img knows an ISO file as raw; the repository keeps "iso" for CD-ROMs
QEMU_FORMAT = {"iso": "raw"}
INFO_MEMORY_LIMIT = 1 << 30
INFO_CPU_SECONDS = 30
CHUNK = 1 << 20


class QemuImgError(Exception):
    """``qemu-img`` failed; ``message`` carries its own error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsafeImage(QemuImgError):
    """The image is refused; ``message`` says why."""


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` reports about one file, reduced to what the repository needs."""

    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None = None
    data_file: str | None = None
    extents: tuple[str, ...] = ()
    encrypted: bool = False
    create_type: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CheckResult:
    """``qemu-img check``: corruptions and leaks (formats without metadata report none)."""

    ok: bool
    corruptions: int = 0
    leaks: int = 0
    message: str = ""


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (INFO_MEMORY_LIMIT, INFO_MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (INFO_CPU_SECONDS, INFO_CPU_SECONDS))


def _run(args: list[str], *, limited: bool = True) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [QEMU_IMG, *args],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=_limits if limited else None,  # noqa: PLW1509 - rlimits only, no locks taken
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except OSError as exc:
        raise QemuImgError(f"cannot run qemu-img: {exc}") from exc
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().removeprefix("qemu-img: ")
        raise QemuImgError(msg or f"qemu-img {args[0]} failed with status {proc.returncode}")
    return proc.stdout


def qemu_format(fmt: str) -> str:
    """The format name qemu-img knows ``fmt`` by."""
    return QEMU_FORMAT.get(fmt, fmt)


def _parse_info(data: dict[str, Any]) -> ImageInfo:
    specific = data.get("format-specific") or {}
    sdata = specific.get("data") or {}
    extents = tuple(str(e.get("filename", "")) for e in sdata.get("extents", []) or [])
    return ImageInfo(
        format=str(data.get("format", "")),
        virtual_size=int(data.get("virtual-size", 0)),
        actual_size=int(data.get("actual-size", 0)),
        backing_file=data.get("backing-filename") or data.get("full-backing-filename"),
        data_file=sdata.get("data-file"),
        extents=extents,
        encrypted=bool(data.get("encrypted")) or bool(sdata.get("encrypt")),
        create_type=str(sdata.get("create-type", "")),
        raw=data,
    )


def info(path: str | Path, fmt: str) -> ImageInfo:
    """``qemu-img info --output=json -f fmt path`` (format pinned)."""
    out = _run(["info", "--output=json", "-U", "-f", qemu_format(fmt), str(path)])
    return _parse_info(json.loads(out))


def probe_format(path: str | Path) -> str:
    """Detect the format of ``path`` (the only unpinned call; used on an uploaded file in its
    datastore, before any safety check). A raw file holding an ISO 9660 volume is "iso"."""
    refuse_text_descriptor(path)
    data = json.loads(_run(["info", "--output=json", "-U", str(path)]))
    fmt = str(data.get("format", ""))
    if fmt == "raw" and is_iso9660(path):
        return "iso"
    return fmt


def is_iso9660(path: str | Path) -> bool:
    """An ISO 9660 primary volume descriptor sits at byte 32769 ("CD001")."""
    try:
        with open(path, "rb") as f:
            f.seek(32769)
            return f.read(5) == b"CD001"
    except OSError:
        return False


_EXTENT = re.compile(r'^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+\S+\s+"([^"]*)"', re.MULTILINE)


def refuse_text_descriptor(path: str | Path) -> None:
    """Refuse a text VMDK descriptor whose extents name other files, *before* qemu-img opens
    (and reads) the files it names."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if head.startswith(b"KDMV"):
        return  # a sparse VMDK with its descriptor embedded: its extent is the file itself
    if b"# Disk DescriptorFile" not in head[:1024] and b"createType" not in head[:4096]:
        return
    text = head.decode("latin-1")
    own = os.path.basename(str(path))
    others = [name for _mode, name in _EXTENT.findall(text) if os.path.basename(name) != own or "/" in name]
    if others or "parentFileNameHint" in text:
        raise UnsafeImage(
            "VMDK descriptor references other files "
            f"({', '.join(others) or 'a parent disk'}): only self-contained images are accepted"
        )


def check_safe(path: str | Path, image: ImageInfo, *, max_virtual_bytes: int | None = None) -> None:
    """Raise ``UnsafeImage`` saying why, when ``image`` (the pinned ``info`` of ``path``) may
    read files outside itself or is too large."""
    if image.format not in DISK_FORMATS:
        raise UnsafeImage(f"format {image.format!r} is not accepted (accepted: {', '.join(FORMATS)})")
    if image.backing_file:
        raise UnsafeImage(f"image has a backing file ({image.backing_file}): upload a flattened image")
    if image.data_file:
        raise UnsafeImage(f"image has an external data file ({image.data_file}): upload a self-contained image")
    own = os.path.realpath(str(path))
    folder = os.path.dirname(own)
    for extent in image.extents:
        target = os.path.realpath(os.path.join(folder, extent))
        if target != own:
            raise UnsafeImage(
                f"VMDK extent references another file ({extent}): only self-contained images are accepted"
            )
    if image.encrypted:
        raise UnsafeImage("encrypted images are not accepted")
    if max_virtual_bytes is not None and image.virtual_size > max_virtual_bytes:
        raise UnsafeImage(
            f"virtual size {image.virtual_size} bytes ({image.virtual_size / 2**30:.1f} GiB) is over the limit "
            f"of {max_virtual_bytes} bytes ({max_virtual_bytes / 2**30:.1f} GiB)"
        )


def inspect(path: str | Path, *, fmt: str | None = None, max_virtual_bytes: int | None = None) -> tuple[str, ImageInfo]:
    """Detect (unless ``fmt`` is given), re-read with the format pinned and check ``path``.
    Returns the repository format ("iso" for ISO 9660) and the pinned info."""
    refuse_text_descriptor(path)
    detected = fmt or probe_format(path)
    if detected not in FORMATS:
        raise UnsafeImage(f"format {detected!r} is not accepted (accepted: {', '.join(FORMATS)})")
    pinned = info(path, detected)
    check_safe(path, pinned, max_virtual_bytes=max_virtual_bytes)
    return detected, pinned


def check(path: str | Path, fmt: str) -> CheckResult:
    """``qemu-img check`` (formats without metadata, e.g. raw, always pass)."""
    if qemu_format(fmt) == "raw":
        return CheckResult(ok=True)
    try:
        out = _run(["check", "--output=json", "-U", "-f", qemu_format(fmt), str(path)])
    except QemuImgError as exc:
        if "does not support checks" in exc.message:
            return CheckResult(ok=True, message=exc.message)
        return CheckResult(ok=False, message=exc.message)
    data = json.loads(out or "{}")
    corruptions = int(data.get("corruptions", 0))
    return CheckResult(ok=corruptions == 0, corruptions=corruptions, leaks=int(data.get("leaks", 0)))


def create(path: str | Path, fmt: str, size_bytes: int) -> None:
    """``qemu-img create -f fmt path size`` (a new, empty, sparse image)."""
    _run(["create", "-q", "-f", qemu_format(fmt), str(path), str(int(size_bytes))], limited=False)


_PROGRESS = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


def convert(
    src: str | Path,
    src_fmt: str,
    dst: str | Path,
    dst_fmt: str,
    *,
    progress: Callable[[float], None] | None = None,
    options: str = "",
) -> None:
    """``qemu-img convert -p -f src_fmt -O dst_fmt src dst``; ``progress(percent)`` is called as
    qemu-img reports it. The destination is removed when the conversion fails."""
    args = [QEMU_IMG, "convert", "-p", "-f", qemu_format(src_fmt), "-O", qemu_format(dst_fmt)]
    if options:
        args += ["-o", options]
    args += [str(src), str(dst)]
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
        )
    except OSError as exc:
        raise QemuImgError(f"cannot run qemu-img: {exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    buf = b""
    last = -1.0
    while True:
        chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(64)
        if not chunk:
            break
        buf = (buf + chunk)[-256:]
        found = _PROGRESS.findall(buf.decode("ascii", "replace"))
        if found and progress is not None:
            pct = float(found[-1])
            if pct != last:
                last = pct
                progress(pct)
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.wait() != 0:
        Path(dst).unlink(missing_ok=True)
        raise QemuImgError(err.removeprefix("qemu-img: ") or "qemu-img convert failed")
    if progress is not None and last < 100:
        progress(100.0)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()
