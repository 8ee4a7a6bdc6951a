"""``nephele vm console-log`` and ``nephele vm console-token``: a VM's console from the command line.

``console-log`` prints (or saves) what the guest printed on its serial console
(``GET /api/v1/vms/<id>/console-log/``); ``console-token`` asks for a one-time console token
(``POST /api/v1/vms/<id>/console/``) and prints the websocket URL to open with it, for a
websocket client of your own (binary frames are the terminal's bytes, or RFB for ``vnc``).
Registered on ``vm`` when cli/main.py imports it.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import requests
import typer

from .client import API_ERROR, UNREACHABLE, CliError, _error
from .common import api, err, run, show
from .resources import typer_for

vm_app = typer_for("vm")


class Kind(StrEnum):
    serial = "serial"
    vnc = "vnc"


def _ws_url(http_url: str, path: str) -> str:
    base = http_url.rstrip("/")
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[-1]}{path}"


@vm_app.command("console-log")
def vm_console_log(
    vm_id: int,
    bytes_: Annotated[
        int | None, typer.Option("--bytes", help="only the log's last BYTES bytes (the server caps it)")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", "-f", help="save the log to this file instead of printing it")
    ] = None,
) -> None:
    """What the VM's guest printed on its serial console (the log's end)."""

    def go() -> None:
        a = api()
        params = {"bytes": bytes_} if bytes_ is not None else None
        url = f"{a.profile.url}/api/v1/vms/{vm_id}/console-log/"
        try:
            resp = a.session.get(url, params=params, headers={"Accept": "text/plain, application/json"}, timeout=60)
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {a.profile.url}: {exc.__class__.__name__}", UNREACHABLE) from None
        if resp.status_code >= 400:
            raise _error(resp)
        if output_file is not None:
            try:
                output_file.write_bytes(resp.content)
            except OSError as exc:
                raise CliError(f"cannot write {output_file}: {exc.strerror}", API_ERROR, "output-file") from None
            err.print(f"saved {len(resp.content)} bytes to {output_file}", highlight=False)
            return
        sys.stdout.buffer.write(resp.content)
        sys.stdout.flush()

    run(go)


@vm_app.command("console-token")
def vm_console_token(
    vm_id: int,
    kind: Annotated[Kind, typer.Option(help="serial, or vnc when the VM's template enables graphics")] = Kind.serial,
) -> None:
    """A one-time console token and the websocket URL to open with it (soon: it expires)."""

    def go() -> None:
        a = api()
        ticket = a.post(f"vms/{vm_id}/console/", {"kind": kind.value})
        ticket["websocket"] = _ws_url(a.profile.url, ticket["url"])
        show(ticket, [("kind", "Kind"), ("websocket", "Websocket"), ("expires_at", "Expires")])

    run(go)
