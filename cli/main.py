"""``nephele``: the command line of a Nephele cloud, over its REST API (docs/cli.md)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from .client import API_ERROR, AUTH, Api, CliError, load_config, profile, save_config, token_from_password

app = typer.Typer(help="Nephele cloud: VMs, templates, images, hosts and more, from the command line.",
                  no_args_is_help=True, pretty_exceptions_enable=False)  # fmt: skip
vm_app = typer.Typer(help="Virtual machines.", no_args_is_help=True)
app.add_typer(vm_app, name="vm")
out = Console()
err = Console(stderr=True)
#: states a VM passes through while an operation runs (compute.states.TRANSIENT)
TRANSIENT = {"PROLOG", "BOOT", "MIGRATE", "SHUTDOWN", "SAVE", "EPILOG"}


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class State:
    profile: str | None = None
    output: Output = Output.table
    project: int | None = None


state = State()


@app.callback()
def main_options(
    profile_name: Annotated[str | None, typer.Option("--profile", help="the cloud to talk to (see login)")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")] = Output.table,
    project: Annotated[int | None, typer.Option(help="the project to act in (default: the profile's)")] = None,
) -> None:
    state.profile, state.output, state.project = profile_name, output, project


def api() -> Api:
    return Api(profile(state.profile))


def project_id(a: Api) -> int | None:
    return state.project if state.project is not None else a.profile.project


def show(rows: Any, columns: Sequence[tuple[str, str]], title: str = "") -> None:
    """Rows (a dict or a list of dicts) as a table, or the API's own JSON / YAML."""
    if state.output == Output.json:
        out.print_json(json.dumps(rows))
        return
    if state.output == Output.yaml:
        print(yaml.safe_dump(rows, sort_keys=False), end="")
        return
    if isinstance(rows, dict):
        t = Table(show_header=False, title=title or None)
        for key, value in rows.items():
            t.add_row(key, _cell(value))
    else:
        t = Table(title=title or None)
        for _key, label in columns:
            t.add_column(label)
        for row in rows:
            t.add_row(*[_cell(row.get(key)) for key, _label in columns])
    out.print(t)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def run(command: Callable[[], None]) -> None:
    try:
        command()
    except CliError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        err.print(f"[red]error[/red]: {exc.message}{where}", highlight=False)
        raise typer.Exit(exc.code) from None


# ------------------------------------------------------------------------------- login
@app.command()
def login(
    url: Annotated[str, typer.Option(help="the portal's address, e.g. https://cloud.example.org")],
    username: Annotated[str | None, typer.Option(help="sign in with this user (the password is asked)")] = None,
    token: Annotated[str | None, typer.Option(help="or use an existing API token (nph_…)")] = None,
    password: Annotated[str | None, typer.Option(hidden=True, envvar="NEPHELE_PASSWORD")] = None,
    name: Annotated[str, typer.Option("--as", help="the profile's name")] = "default",
    days: Annotated[int | None, typer.Option(help="lifetime of the token made from a password")] = None,
    project: Annotated[int | None, typer.Option("--default-project", help="the profile's default project")] = None,
) -> None:
    """Store a profile: a cloud's address and an API token (file mode 0600)."""

    def do() -> None:
        base = url.rstrip("/")
        secret = token
        if not secret:
            if not username:
                raise CliError("give --token, or --username (the password is asked)", AUTH)
            pw = password or typer.prompt("Password", hide_input=True)
            secret = token_from_password(base, username, pw, name=f"cli-{name}", days=days)
        config = load_config()
        config.setdefault("profiles", {})[name] = {"url": base, "token": secret, "project": project}
        config["current"] = name
        save_config(config)
        Api(profile(name)).get("tokens/", limit=1)  # proves the token works
        out.print(f"logged in to {base} as profile {name!r}")

    run(do)


# ------------------------------------------------------------------------------- VMs
VM_COLUMNS = [("id", "ID"), ("name", "Name"), ("state", "State"), ("operation", "Operation"), ("host", "Host"),
              ("vcpu", "vCPU"), ("memory_mb", "MiB"), ("project", "Project")]  # fmt: skip


@vm_app.command("list")
def vm_list(
    state_filter: Annotated[str | None, typer.Option("--state", help="e.g. RUNNING or RUNNING,POWEROFF")] = None,
    name: Annotated[str | None, typer.Option(help="names containing this")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """The VMs you may see (of --project when given)."""

    def do() -> None:
        a = api()
        rows = a.list("vms/", limit=limit, state=state_filter, name=name, project=project_id(a))
        show(rows, VM_COLUMNS)

    run(do)


@vm_app.command("show")
def vm_show(vm_id: int) -> None:
    """One VM, every field."""
    run(lambda: show(api().get(f"vms/{vm_id}/"), VM_COLUMNS))


def _wait(a: Api, vm_id: int, timeout: float) -> dict[str, Any]:
    """Until the VM's operation is over, with a live state line; the VM at the end."""
    deadline = time.monotonic() + timeout
    with err.status(f"VM {vm_id}: …") as status:
        while True:
            vm = a.get(f"vms/{vm_id}/")
            status.update(f"VM {vm_id}: {vm['state']}{' (' + vm['operation'] + ')' if vm['operation'] else ''}")
            if not vm["operation"] and vm["state"] not in TRANSIENT:
                return vm  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise CliError(f"VM {vm_id} still {vm['state']} after {timeout:.0f} s", API_ERROR)
            time.sleep(1)


@vm_app.command("create")
def vm_create(
    name: str,
    template: Annotated[int, typer.Option(help="the template's id")],
    count: Annotated[int, typer.Option(min=1, max=100)] = 1,
    vcpu: Annotated[int | None, typer.Option()] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb")] = None,
    hold: Annotated[bool, typer.Option(help="create on hold (not scheduled)")] = False,
    wait: Annotated[bool, typer.Option(help="wait until each VM is placed and booted (or fails)")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300,
) -> None:
    """Create VMs from a template in --project (or the profile's project)."""

    def do() -> None:
        a = api()
        pid = project_id(a)
        if pid is None:
            raise CliError("name the project: --project ID (or log in with --default-project)", API_ERROR, "project")
        body: dict[str, Any] = {"name": name, "project": pid, "template": template, "count": count, "hold": hold}
        body.update({k: v for k, v in {"vcpu": vcpu, "memory_mb": memory_mb}.items() if v is not None})
        vms = a.post("vms/", body)
        if wait:
            vms = [_wait(a, vm["id"], timeout) for vm in vms]
        show(vms, VM_COLUMNS)

    run(do)


@vm_app.command("action")
def vm_action(
    vm_id: int,
    action: Annotated[
        str, typer.Argument(help="poweroff, resume, reboot, suspend, stop, undeploy, terminate, hold, release, …")
    ],
    hard: Annotated[bool, typer.Option(help="without asking the guest")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask before terminate")] = False,
    wait: Annotated[bool, typer.Option(help="wait until the operation is over")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300,
) -> None:
    """Start an action on a VM (202), optionally waiting for its end."""

    def do() -> None:
        if action == "terminate" and not yes and not typer.confirm(f"Terminate VM {vm_id}? Its disks are deleted."):
            raise typer.Exit(1)
        a = api()
        a.post(f"vms/{vm_id}/action/", {"action": action, "hard": hard})
        vm = _wait(a, vm_id, timeout) if wait else a.get(f"vms/{vm_id}/")
        show(vm, VM_COLUMNS)

    run(do)


@vm_app.command("resize")
def vm_resize(
    vm_id: int,
    vcpu: Annotated[int | None, typer.Option()] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb")] = None,
) -> None:
    """Resize a VM that is not running."""

    def do() -> None:
        a = api()
        body: dict[str, Any] = {"action": "resize"}
        body.update({k: v for k, v in {"vcpu": vcpu, "memory_mb": memory_mb}.items() if v is not None})
        a.post(f"vms/{vm_id}/action/", body)
        show(a.get(f"vms/{vm_id}/"), VM_COLUMNS)

    run(do)


# ------------------------------------------------------------------------------- lists
def _lister(path: str, columns: list[tuple[str, str]], help_text: str) -> Callable[[], None]:
    def command(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
        def do() -> None:
            a = api()
            params = {"project": project_id(a)} if path in ("templates/", "images/", "volumes/", "networks/") else {}
            show(a.list(path, limit=limit, **params), columns)

        run(do)

    command.__doc__ = help_text
    return command


LISTS = {
    "template": ("templates/", [("id", "ID"), ("name", "Name"), ("vcpu", "vCPU"), ("memory_mb", "MiB"),
                                ("disk_gb", "GiB"), ("project", "Project")], "VM templates you may use."),
    "image": ("images/", [("id", "ID"), ("name", "Name"), ("state", "State"), ("type", "Type"), ("format", "Format"),
                          ("visibility", "Visibility")], "Images you may see."),
    "volume": ("volumes/", [("id", "ID"), ("name", "Name"), ("state", "State"), ("size_bytes", "Bytes"),
                            ("vm", "VM")], "Volumes."),
    "network": ("networks/", [("id", "ID"), ("name", "Name"), ("cidr4", "IPv4"), ("visibility", "Visibility")],
                "Virtual networks."),
    "host": ("hosts/", [("id", "ID"), ("name", "Name"), ("state", "State"), ("total_vcpu", "vCPU"),
                        ("alloc_vcpu", "Allocated"), ("uri", "URI")], "Hypervisor hosts (cloud admins)."),
    "project": ("projects/", [("id", "ID"), ("name", "Name"), ("organization", "Organization")], "Your projects."),
    "token": ("tokens/", [("id", "ID"), ("name", "Name"), ("project", "Project"), ("expires_at", "Expires")],
              "Your API tokens."),
    "event": ("events/", [("id", "ID"), ("created_at", "Time"), ("type", "Type"), ("object_name", "Object"),
                          ("actor", "Actor")], "Recent events."),
}  # fmt: skip
for _name, (_path, _columns, _help) in LISTS.items():
    _sub = typer.Typer(help=_help, no_args_is_help=True)
    _sub.command("list")(_lister(_path, _columns, _help))
    app.add_typer(_sub, name=_name)

from . import console as _console  # noqa: E402, F401  (vm console-log, vm console-token)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
