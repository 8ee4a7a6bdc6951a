"""``nephele volume`` and ``nephele datastore``: the storage manager's own commands. Volume
operations answer 202 with the volume in a transient state; ``--wait`` follows it to the end."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .client import USAGE, Api, CliError
from .common import api, compact, confirm, need_project, run, show, wait_state
from .resources import RESOURCES, typer_for

volume_app = typer_for("volume")
datastore_app = typer_for("datastore")
VOLUME_COLUMNS = RESOURCES["volume"].columns
DATASTORE_COLUMNS = RESOURCES["datastore"].columns
#: the states a volume rests in (storage.states.VolumeState); the others are operations under way
RESTING = {"available", "in-use", "error"}
GIB = 1 << 30

Wait = Annotated[bool, typer.Option(help="wait until the operation is over (a live state line)")]
Timeout = Annotated[float, typer.Option(help="seconds --wait waits")]


def _size(size_gb: int | None, size_bytes: int | None) -> int | None:
    if size_gb is not None and size_bytes is not None:
        raise CliError("give --size-gb or --size-bytes, not both", USAGE, "size_bytes")
    return size_gb * GIB if size_gb is not None else size_bytes


def _volume_op(a: Api, vol: dict[str, Any], wait: bool, timeout: float) -> None:
    if wait:
        vol = wait_state(
            a, f"volumes/{vol['id']}/", lambda v: v["state"] not in RESTING or bool(v["operation"]),
            lambda v: f"volume {v['id']}: {v['state']}", timeout,
            failed=lambda v: (v["state_message"] or "failed") if v["state"] == "error" else "",
        ) or vol  # fmt: skip
    show(vol, VOLUME_COLUMNS)


def _post(path: str, body: dict[str, Any] | None, wait: bool, timeout: float) -> None:
    a = api()
    _volume_op(a, a.post(path, body), wait, timeout)


@volume_app.command("create")
def volume_create(
    name: str,
    size_gb: Annotated[int | None, typer.Option("--size-gb", min=1, help="GiB (or --size-bytes)")] = None,
    size_bytes: Annotated[int | None, typer.Option("--size-bytes", min=1)] = None,
    image: Annotated[int | None, typer.Option(help="a copy of this image (grown to the size when given)")] = None,
    datastore: Annotated[int | None, typer.Option(help="a system datastore's id")] = None,
    volume_format: Annotated[str | None, typer.Option("--format", help="qcow2 (default) or raw")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    wait: Wait = False,
    timeout: Timeout = 600,
) -> None:
    """Create a volume in --project: empty (--size-gb) or from an image (--image)."""

    def do() -> None:
        a = api()
        body = {"project": need_project(a), "name": name, **compact(
            size_bytes=_size(size_gb, size_bytes), image=image, datastore=datastore, format=volume_format,
            description=description)}  # fmt: skip
        _volume_op(a, a.post("volumes/", body), wait, timeout)

    run(do)


@volume_app.command("attach")
def volume_attach(
    volume_id: int,
    vm: Annotated[int, typer.Option(help="the VM's id (same project)")],
    target: Annotated[str | None, typer.Option(help="vdb … vdz (default: the next free)")] = None,
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Attach to a VM: live if it runs (where the host hotplugs disks), else at its next boot."""
    run(lambda: _post(f"volumes/{volume_id}/attach/", {"vm": vm, **compact(target=target)}, wait, timeout))


@volume_app.command("detach")
def volume_detach(volume_id: int, wait: Wait = False, timeout: Timeout = 300) -> None:
    """Detach from its VM."""
    run(lambda: _post(f"volumes/{volume_id}/detach/", None, wait, timeout))


@volume_app.command("grow")
def volume_grow(
    volume_id: int,
    size_gb: Annotated[int | None, typer.Option("--size-gb", min=1, help="the new size, GiB")] = None,
    size_bytes: Annotated[int | None, typer.Option("--size-bytes", min=1)] = None,
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Grow a volume (never shrinks)."""

    def do() -> None:
        size = _size(size_gb, size_bytes)
        if size is None:
            raise CliError("give the new size: --size-gb or --size-bytes", USAGE, "size_bytes")
        _post(f"volumes/{volume_id}/grow/", {"size_bytes": size}, wait, timeout)

    run(do)


@volume_app.command("snapshot")
def volume_snapshot(volume_id: int, name: str, wait: Wait = False, timeout: Timeout = 300) -> None:
    """Take a snapshot (qcow2; not while attached to a running VM)."""
    run(lambda: _post(f"volumes/{volume_id}/snapshot/", {"name": name}, wait, timeout))


@volume_app.command("revert")
def volume_revert(
    volume_id: int,
    snapshot: Annotated[int, typer.Argument(help="the snapshot's id (volume show lists them)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Revert a volume to a snapshot (what was written since is lost; asks first)."""

    def do() -> None:
        confirm(f"Revert volume {volume_id} to snapshot {snapshot}? Changes since are lost.", yes)
        _post(f"volumes/{volume_id}/revert/", {"snapshot": snapshot}, wait, timeout)

    run(do)


@volume_app.command("delete-snapshot")
def volume_delete_snapshot(
    volume_id: int,
    snapshot: int,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    wait: Wait = False,
    timeout: Timeout = 300,
) -> None:
    """Delete one snapshot of a volume (asks first)."""

    def do() -> None:
        confirm(f"Delete snapshot {snapshot} of volume {volume_id}?", yes)
        _post(f"volumes/{volume_id}/delete-snapshot/", {"snapshot": snapshot}, wait, timeout)

    run(do)


# ------------------------------------------------------------------------------ datastores
Clusters = Annotated[list[int] | None, typer.Option("--cluster", help="a cluster whose hosts reach it (repeatable)")]


def _datastore_body(source: str | None, clusters: list[int] | None, **values: Any) -> dict[str, Any]:
    body = compact(**values)
    if source is not None:
        try:
            body["source"] = json.loads(source)
        except ValueError:
            raise CliError('--source must be a JSON object, e.g. \'{"host": "nfs1"}\'', USAGE, "source") from None
    if clusters is not None:
        body["clusters"] = clusters
    return body


@datastore_app.command("create")
def datastore_create(
    name: str,
    kind: Annotated[str, typer.Option(help="image or system")],
    driver: Annotated[str | None, typer.Option(help="dir (default), logical, netfs or rbd")] = None,
    path: Annotated[str | None, typer.Option(help="the pool's target path")] = None,
    source: Annotated[str | None, typer.Option(help="driver settings as JSON (docs/storage.md)")] = None,
    clone_mode: Annotated[str | None, typer.Option("--clone-mode", help="cow (default) or copy")] = None,
    clusters: Clusters = None,
) -> None:
    """Create a datastore (cloud admins)."""
    body = _datastore_body(source, clusters, name=name, kind=kind, driver=driver, path=path, clone_mode=clone_mode)
    run(lambda: show(api().post("datastores/", body), DATASTORE_COLUMNS))


@datastore_app.command("update")
def datastore_update(
    datastore_id: int,
    name: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option(help="driver settings as JSON")] = None,
    clone_mode: Annotated[str | None, typer.Option("--clone-mode")] = None,
    clusters: Clusters = None,
) -> None:
    """Change a datastore (only the options given)."""
    body = _datastore_body(source, clusters, name=name, clone_mode=clone_mode)
    run(lambda: show(api().patch(f"datastores/{datastore_id}/", body), DATASTORE_COLUMNS))


def _datastore_action(action: str, doc: str) -> None:
    def fn(datastore_id: int) -> None:
        run(lambda: show(api().post(f"datastores/{datastore_id}/action/", {"action": action}), DATASTORE_COLUMNS))

    datastore_app.command(action, help=doc)(fn)


_datastore_action("enable", "Let new disks and images be placed on a datastore.")
_datastore_action("disable", "Keep new disks and images off a datastore.")
_datastore_action("refresh", "Measure a datastore's capacity again (in the background).")
