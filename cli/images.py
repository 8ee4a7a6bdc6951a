"""``nephele image``: upload (chunked, resumable from the server's offset), data blocks, convert
and clone (with a progress bar), enable / disable, publication, sharing.

The upload protocol is the API's (docs/images.md): ``POST images/`` declares the file (size and
sha256), then ``PUT images/{id}/upload/`` sends it in ``Content-Range`` chunks, in order; the
server keeps ``uploaded_bytes`` and refuses (409) a chunk that does not start there. So the CLI
resumes from what the server has: after a lost connection or a 409 it reads ``uploaded_bytes``
again and goes on from there, and ``--resume ID`` continues an upload a previous run left
behind (the image stays ``uploading`` until the last chunk arrives).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import CONFLICT, UNREACHABLE, USAGE, Api, CliError
from .common import api, compact, err, need_project, run, show, wait_progress
from .resources import RESOURCES, share_commands, typer_for

image_app = typer_for("image")
COLUMNS = RESOURCES["image"].columns
#: attempts at one chunk when the connection drops or the server is elsewhere (then: --resume)
CHUNK_ATTEMPTS = 5

Name = Annotated[str | None, typer.Option(help="the new image's name")]
Datastore = Annotated[int | None, typer.Option(help="an image datastore's id (default: the first)")]
Wait = Annotated[bool, typer.Option(help="wait until it is ready (a progress bar)")]
Timeout = Annotated[float, typer.Option(help="seconds --wait waits")]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f, err.status(f"sha256 of {path.name} …"):
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def _send(a: Api, img: dict[str, Any], path: Path, chunk: int) -> dict[str, Any]:
    """Send the file from the server's offset on, chunk by chunk, with a progress bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    size, image_id = path.stat().st_size, img["id"]
    offset = img["uploaded_bytes"]
    last: dict[str, Any] = img
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with path.open("rb") as f, Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"upload {path.name}", total=size, completed=offset)
        failures = 0
        while offset < size:
            f.seek(offset)
            data = f.read(chunk)
            try:
                last = a.put_bytes(
                    f"images/{image_id}/upload/", data, f"bytes {offset}-{offset + len(data) - 1}/{size}"
                )
            except CliError as exc:
                # the server's offset differs (a chunk whose answer was lost) or the connection dropped:
                # ask the server where it is and go on from there
                if exc.code not in (CONFLICT, UNREACHABLE) or failures + 1 >= CHUNK_ATTEMPTS:
                    raise
                failures += 1
                time.sleep(min(2**failures / 2, 5))
                current = a.get(f"images/{image_id}/")
                if current["state"] != "uploading":
                    raise
                offset = current["uploaded_bytes"]
                bar.update(task, completed=offset)
                continue
            failures = 0
            offset += len(data)
            bar.update(task, completed=offset)
    return last


@image_app.command("upload")
def image_upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the image file")],
    name: Annotated[str | None, typer.Option(help="default: the file's name without its extension")] = None,
    image_type: Annotated[str, typer.Option("--type", help="os, cdrom, datablock, kernel, ramdisk or context")] = "os",
    datastore: Datastore = None,
    description: Annotated[str, typer.Option()] = "",
    persistent: Annotated[bool, typer.Option(help="one VM at a time writes it (not a base for copies)")] = False,
    chunk_mib: Annotated[int, typer.Option("--chunk-mib", min=1, max=1024, help="MiB per request")] = 8,
    resume: Annotated[
        int | None, typer.Option(help="continue the interrupted upload of this image id from the server's offset")
    ] = None,
    checksum: Annotated[bool, typer.Option(help="declare the file's sha256 (the server checks it at the end)")] = True,
) -> None:
    """Upload an image file in chunks, with a progress bar; resumable (--resume ID)."""

    def do() -> None:
        a = api()
        size = file.stat().st_size
        if size == 0:
            raise CliError(f"{file} is empty", USAGE, "file")
        if resume is not None:
            img = a.get(f"images/{resume}/")
            if img["state"] != "uploading":
                raise CliError(f"image {resume} is {img['state']}, not uploading: nothing to resume", CONFLICT, "state")
            if img["upload_size_bytes"] and img["upload_size_bytes"] != size:
                raise CliError(
                    f"image {resume} expects {img['upload_size_bytes']} bytes and {file} has {size}: another file?",
                    CONFLICT, "file",
                )  # fmt: skip
            err.print(f"image {resume}: resuming at byte {img['uploaded_bytes']} of {size}", highlight=False)
        else:
            body = {"project": need_project(a), "name": name or file.stem, "type": image_type,
                    "description": description, "persistent": persistent, "size_bytes": size,
                    "filename": file.name, **compact(datastore=datastore)}  # fmt: skip
            if checksum:
                body["sha256"] = _sha256(file)
            img = a.post("images/", body)
            err.print(f"image {img['id']} created (if interrupted: --resume {img['id']})", highlight=False)
        try:
            done = _send(a, img, file, chunk_mib << 20)
        except CliError as exc:
            if exc.code in (CONFLICT, UNREACHABLE):
                exc.message += f"; continue with `nephele image upload {file} --resume {img['id']}`"
            raise
        show(done, COLUMNS)

    run(do)


@image_app.command("datablock")
def image_datablock(
    name: str,
    size_gb: Annotated[int, typer.Option("--size-gb", min=1, help="GiB")],
    image_format: Annotated[str, typer.Option("--format", help="raw or qcow2")] = "qcow2",
    datastore: Datastore = None,
    description: Annotated[str, typer.Option()] = "",
    persistent: Annotated[bool, typer.Option()] = True,
) -> None:
    """Create an empty data block image in --project."""

    def do() -> None:
        a = api()
        body = {"project": need_project(a), "name": name, "size_gb": size_gb, "format": image_format,
                "description": description, "persistent": persistent, **compact(datastore=datastore)}  # fmt: skip
        show(a.post("images/datablock/", body), COLUMNS)

    run(do)


@image_app.command("update")
def image_update(
    image_id: int,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    image_type: Annotated[str | None, typer.Option("--type", help="os, cdrom or datablock")] = None,
    persistent: Annotated[bool | None, typer.Option("--persistent/--not-persistent")] = None,
) -> None:
    """Change an image's attributes (only the options given)."""
    body = compact(name=name, description=description, type=image_type, persistent=persistent)
    run(lambda: show(api().patch(f"images/{image_id}/", body), COLUMNS))


def _derive(action: str, image_id: int, body: dict[str, Any], wait: bool, timeout: float) -> None:
    a = api()
    new = a.post(f"images/{image_id}/action/", {"action": action, **body})
    if wait:
        new = wait_progress(
            a, f"images/{new['id']}/", lambda img: img["state"] == "converting", f"{action} → image {new['id']}",
            timeout, failed=lambda img: img["state_message"] or "failed" if img["state"] == "error" else "",
        )  # fmt: skip
    show(new, COLUMNS)


@image_app.command("convert")
def image_convert(
    image_id: int,
    image_format: Annotated[str, typer.Option("--format", help="raw, qcow2, vmdk, vdi or vhdx")],
    name: Name = None,
    datastore: Datastore = None,
    wait: Wait = False,
    timeout: Timeout = 3600,
) -> None:
    """Convert to another format: a new image (the source stays as it is)."""
    body = {"format": image_format, **compact(name=name, datastore=datastore)}
    run(lambda: _derive("convert", image_id, body, wait, timeout))


@image_app.command("clone")
def image_clone(image_id: int, name: Name = None, datastore: Datastore = None, wait: Wait = False,
                timeout: Timeout = 3600) -> None:  # fmt: skip
    """Copy an image (into the same or another image datastore)."""
    run(lambda: _derive("clone", image_id, compact(name=name, datastore=datastore), wait, timeout))


def _simple(command: str, action: str, doc: str) -> None:
    def fn(image_id: int) -> None:
        run(lambda: show(api().post(f"images/{image_id}/action/", {"action": action}), COLUMNS))

    image_app.command(command, help=doc)(fn)


for _command, _action, _doc in [
    ("enable", "enable", "Make a disabled image usable again."),
    ("disable", "disable", "Keep new VMs from using an image."),
    ("request-publish", "request_publish", "Ask the cloud admins to make an image public."),
    ("withdraw-publish", "withdraw_publish", "Withdraw a publication request."),
    ("publish", "publish", "Make an image public (cloud admins)."),
    ("unpublish", "unpublish", "Make a public image private again (cloud admins)."),
]:
    _simple(_command, _action, _doc)

share_commands(image_app, "images/", "image")
