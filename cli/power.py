"""``nephele host power on|off|reset|status HOST``, ``nephele host bmc HOST …`` and
``nephele host maintenance|drain|activate HOST [--wait]`` (cloud admins), over the REST API.

HOST is a host's id or name. ``attach`` adds these commands to the ``host`` group of
``cli/main.py``.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from .client import CONFLICT, NOT_FOUND, Api, CliError
from .common import api, err, run, show
from .resources import typer_for

HOST_COLUMNS = [("id", "ID"), ("name", "Name"), ("state", "State"), ("power_state", "Power"),
                ("power_operation", "Power op."), ("power_message", "Power error")]  # fmt: skip
VM_COLUMNS = [("id", "ID"), ("name", "Name"), ("state", "State"), ("operation", "Operation")]
WAIT_S = 600


class PowerVerb(StrEnum):
    on = "on"
    off = "off"
    reset = "reset"
    status = "status"


def host_id(a: Api, ref: str) -> int:
    """A host's id from its id or name."""
    if ref.isdigit():
        return int(ref)
    for row in a.list("hosts/"):
        if row["name"] == ref:
            return int(row["id"])
    raise CliError(f"no host named {ref!r}", NOT_FOUND, "host")


def _host_view(host: dict[str, Any]) -> dict[str, Any]:
    return {label: host.get(key) for key, label in HOST_COLUMNS}


def _wait_power(a: Api, pk: int, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        host: dict[str, Any] = a.get(f"hosts/{pk}/")
        if not host["power_operation"]:
            return host
        if time.monotonic() > deadline:
            raise CliError(f"the BMC has not answered within {wait_s:.0f} s", CONFLICT)
        time.sleep(0.5)


def power(
    verb: Annotated[PowerVerb, typer.Argument(help="on, off, reset or status")],
    host: Annotated[str, typer.Argument(help="the host's id or name")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the BMC's answer")] = True,
) -> None:
    """Power a host on, off or reset it through its BMC, or ask the BMC for the power state."""

    def do() -> None:
        a = api()
        pk = host_id(a, host)
        shown = a.post(f"hosts/{pk}/power/", {"action": verb.value})
        if wait:
            shown = _wait_power(a, pk, WAIT_S)
            if shown["power_message"]:
                show(_host_view(shown), HOST_COLUMNS)
                raise CliError(f"power {verb.value} failed: {shown['power_message']}")
        show(_host_view(shown), HOST_COLUMNS)

    run(do)


def bmc(
    host: Annotated[str, typer.Argument(help="the host's id or name")],
    driver: Annotated[str, typer.Option("--driver", help="none, redfish or ipmi")],
    address: Annotated[str, typer.Option(help="redfish: the service URL; ipmi: host[:port]")] = "",
    username: Annotated[str, typer.Option(help="the BMC user")] = "",
    system: Annotated[str, typer.Option(help="redfish: the system id (empty: the only one)")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the BMC password from stdin")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify the BMC's TLS certificate")] = False,
) -> None:
    """Set the host's power driver and BMC (the password is sent, never shown)."""

    def do() -> None:
        a = api()
        pk = host_id(a, host)
        body: dict[str, Any] = {"power_driver": driver, "bmc_address": address, "bmc_username": username,
                                "bmc_system": system, "bmc_verify_tls": not insecure}  # fmt: skip
        if password_stdin:
            body["bmc_password"] = typer.get_text_stream("stdin").readline().rstrip("\n")
        shown = a.request("PUT", f"hosts/{pk}/bmc/", body)
        show({k: shown.get(k) for k in ("id", "name", "power_driver", "bmc_address", "bmc_username",
                                        "bmc_system", "bmc_password_set", "power_state")}, [])  # fmt: skip

    run(do)


def _maintenance(action: str, host: str, wait: bool, reason: str = "") -> None:
    def do() -> None:
        a = api()
        pk = host_id(a, host)
        report = a.post(f"hosts/{pk}/maintenance/", {"action": action, "reason": reason})
        if action == "drain":
            for vm, why in report["stays"].items():
                err.print(f"VM {vm} stays: {why}", highlight=False)
        if wait and action == "drain":
            deadline = time.monotonic() + WAIT_S
            while report["vms"]:
                if time.monotonic() > deadline:
                    raise CliError(f"{len(report['vms'])} VM(s) still on the host after {WAIT_S} s", CONFLICT)
                if report["stays"] and all(str(v["id"]) in report["stays"] for v in report["vms"]):
                    raise CliError(f"{len(report['vms'])} VM(s) cannot leave the host", CONFLICT)
                time.sleep(1)
                report = {**report, **a.get(f"hosts/{pk}/maintenance/")}
        if wait and action == "activate":
            deadline = time.monotonic() + WAIT_S
            while report["host"]["state"] == "INIT" or report["host"]["power_operation"]:
                if time.monotonic() > deadline:
                    raise CliError(f"the host is not back after {WAIT_S} s", CONFLICT)
                time.sleep(1)
                report = a.get(f"hosts/{pk}/maintenance/")
        show({"host": report["host"]["name"], "state": report["host"]["state"],
              "power": report["host"]["power_state"], "vms": len(report["vms"])}, [])  # fmt: skip
        if report["vms"]:
            show(report["vms"], VM_COLUMNS, title="VMs on the host")

    run(do)


def maintenance(
    host: Annotated[str, typer.Argument(help="the host's id or name")],
    reason: Annotated[str, typer.Option(help="why (shown on the host)")] = "",
) -> None:
    """Put a host into maintenance: no new placements; lists the VMs still on it."""
    _maintenance("maintenance", host, False, reason)


def drain(
    host: Annotated[str, typer.Argument(help="the host's id or name")],
    wait: Annotated[bool, typer.Option("--wait", help="wait until no VM is left on the host")] = False,
) -> None:
    """Maintenance, and migrate the host's VMs away through the scheduler (live where possible)."""
    _maintenance("drain", host, wait)


def activate(
    host: Annotated[str, typer.Argument(help="the host's id or name")],
    wait: Annotated[bool, typer.Option("--wait", help="wait until the host is probed")] = False,
) -> None:
    """Bring a host out of maintenance (powered on first when its BMC reports it off)."""
    _maintenance("activate", host, wait)


def attach(host_app: typer.Typer) -> None:
    """Add the power and maintenance commands to the ``host`` group."""
    host_app.command("power")(power)
    host_app.command("bmc")(bmc)
    host_app.command("maintenance")(maintenance)
    host_app.command("drain")(drain)
    host_app.command("activate")(activate)


attach(typer_for("host"))  # ``nephele host power …``, ``host maintenance …``
