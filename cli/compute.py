"""``nephele vm``, ``template``, ``host``, ``cluster``: the compute manager's own commands (list,
show and delete come from cli.resources)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from .client import API_ERROR, Api, CliError
from .common import Output, api, compact, confirm, need_project, pairs, project_id, run, show, state, wait_state
from .resources import RESOURCES, share_commands, typer_for

#: states a VM passes through while an operation runs (compute.states.TRANSIENT)
TRANSIENT = {"PROLOG", "BOOT", "MIGRATE", "SHUTDOWN", "SAVE", "EPILOG"}
#: states in which a VM's last operation failed (compute.states.FAILURES)
FAILED_SUFFIX = "_FAILURE"
#: the VM actions, each also a command of its own (`nephele vm poweroff 42`)
VM_ACTIONS = {
    "hold": "Keep a pending VM from being scheduled.",
    "release": "Let a held VM be scheduled.",
    "suspend": "Suspend a running VM (memory kept on the host).",
    "resume": "Start a suspended, powered-off, stopped or undeployed VM again.",
    "poweroff": "Power a running VM off (ACPI; --hard pulls the plug).",
    "reboot": "Reboot a running VM (--hard: reset).",
    "stop": "Save a VM's memory and free its host.",
    "undeploy": "Power a VM off and free its host (disks kept).",
    "terminate": "Delete a VM and its disks (asks first unless --yes).",
    "deploy": "Place a VM on --host now (cloud admins).",
    "migrate": "Move a VM to --host (--live while it runs; cloud admins).",
    "recover": "Settle a VM stuck in an operation (--recover success|failure|retry|delete; cloud admins).",
}
VM_COLUMNS = RESOURCES["vm"].columns

vm_app = typer_for("vm")
template_app = typer_for("template")
host_app = typer_for("host")
cluster_app = typer_for("cluster")


# ------------------------------------------------------------------------------------- VMs
def wait_vm(a: Api, vm_id: int, timeout: float) -> dict[str, Any]:
    """Until the VM's operation is over, with a live state line; the VM at the end."""

    def line(vm: dict[str, Any]) -> str:
        return f"VM {vm_id}: {vm['state']}{' (' + vm['operation'] + ')' if vm['operation'] else ''}"

    def failed(vm: dict[str, Any]) -> str:
        return (vm.get("last_error") or "the operation failed") if vm["state"].endswith(FAILED_SUFFIX) else ""

    vm = wait_state(a, f"vms/{vm_id}/", lambda vm: bool(vm["operation"]) or vm["state"] in TRANSIENT, line,
                    timeout, failed=failed)  # fmt: skip
    assert vm is not None
    return vm


@vm_app.command("list")
def vm_list(
    state_filter: Annotated[str | None, typer.Option("--state", help="e.g. RUNNING or RUNNING,POWEROFF")] = None,
    name: Annotated[str | None, typer.Option(help="names containing this")] = None,
    host: Annotated[int | None, typer.Option(help="on this host (id)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """The VMs you may see (of --project when given). DONE VMs only with --state DONE."""

    def do() -> None:
        a = api()
        rows = a.list("vms/", limit=limit, state=state_filter, name=name, host=host, project=project_id(a))
        show(rows, VM_COLUMNS)

    run(do)


@vm_app.command("create")
def vm_create(
    name: str,
    template: Annotated[int | None, typer.Option(help="the template's id")] = None,
    image: Annotated[
        int | None, typer.Option(help="instead of a template: an OS image's id (needs --vcpu, --memory-mb)")
    ] = None,
    disk_gb: Annotated[
        int | None, typer.Option("--disk-gb", help="with --image: grow each VM's copy to this size")
    ] = None,
    network: Annotated[list[int] | None, typer.Option(help="one more NIC on this network (repeatable)")] = None,
    security_group: Annotated[
        list[int] | None, typer.Option("--security-group", help="for those NICs (repeatable)")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100)] = 1,
    vcpu: Annotated[int | None, typer.Option()] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb")] = None,
    hold: Annotated[bool, typer.Option(help="create on hold (not scheduled)")] = False,
    user_data: Annotated[typer.FileText | None, typer.Option("--user-data", help="a cloud-init file")] = None,
    wait: Annotated[bool, typer.Option(help="wait until each VM is placed and booted (or fails)")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300,
) -> None:
    """Create VMs from a template (--template) or from an image (--image) in --project (or the
    profile's project)."""

    def do() -> None:
        a = api()
        if (template is None) == (image is None):
            raise CliError("give --template ID or --image ID", API_ERROR, "template")
        body: dict[str, Any] = {"name": name, "project": need_project(a), "count": count, "hold": hold,
                                **compact(template=template, image=image, vcpu=vcpu, memory_mb=memory_mb,
                                          disk_gb=disk_gb)}  # fmt: skip
        if network:
            body["networks"] = list(network)
        if security_group:
            body["security_groups"] = list(security_group)
        if user_data is not None:
            body["user_data"] = user_data.read()
        vms = a.post("vms/", body)
        if wait:
            vms = [wait_vm(a, vm["id"], timeout) for vm in vms]
        show(vms, VM_COLUMNS)

    run(do)


def _do_action(
    vm_id: int, action: str, body: dict[str, Any], yes: bool, wait: bool, timeout: float, version: int | None
) -> None:
    if action == "terminate":
        confirm(f"Terminate VM {vm_id}? Its disks are deleted.", yes)
    a = api()
    a.post(f"vms/{vm_id}/action/", {"action": action, **body, **compact(version=version)})
    vm = wait_vm(a, vm_id, timeout) if wait else a.get(f"vms/{vm_id}/")
    show(vm, VM_COLUMNS)


Hard = Annotated[bool, typer.Option(help="without asking the guest")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask before terminate")]
Wait = Annotated[bool, typer.Option(help="wait until the operation is over (a live state line)")]
Timeout = Annotated[float, typer.Option(help="seconds --wait waits")]
Version = Annotated[int | None, typer.Option(help="refuse (409) if the VM changed since this version")]


@vm_app.command("action")
def vm_action(
    vm_id: int,
    action: Annotated[str, typer.Argument(help=", ".join(VM_ACTIONS))],
    hard: Hard = False,
    live: Annotated[bool, typer.Option(help="migrate: while it runs")] = False,
    host: Annotated[int | None, typer.Option(help="deploy / migrate: the host's id")] = None,
    recover: Annotated[str | None, typer.Option(help="recover: success, failure, retry or delete")] = None,
    yes: Yes = False,
    wait: Wait = False,
    timeout: Timeout = 300,
    version: Version = None,
) -> None:
    """Start an action on a VM (202), optionally waiting for its end."""
    body = {"hard": hard, "live": live, **compact(host=host, recover=recover)}
    run(lambda: _do_action(vm_id, action, body, yes, wait, timeout, version))


def _action_command(action: str) -> None:
    def command(vm_id: int, hard: Hard = False, yes: Yes = False, wait: Wait = False, timeout: Timeout = 300,
                version: Version = None) -> None:  # fmt: skip
        run(lambda: _do_action(vm_id, action, {"hard": hard}, yes, wait, timeout, version))

    def placed(
        vm_id: int,
        host: Annotated[int | None, typer.Option(help="the host's id")] = None,
        live: Annotated[bool, typer.Option(help="migrate while it runs")] = False,
        wait: Wait = False,
        timeout: Timeout = 300,
        version: Version = None,
    ) -> None:
        body = {"live": live, **compact(host=host)}
        run(lambda: _do_action(vm_id, action, body, True, wait, timeout, version))

    def recovered(
        vm_id: int,
        how: Annotated[str, typer.Option("--recover", help="success, failure, retry or delete")],
        wait: Wait = False,
        timeout: Timeout = 300,
    ) -> None:
        run(lambda: _do_action(vm_id, action, {"recover": how}, True, wait, timeout, None))

    choices: dict[str, Callable[..., None]] = {"deploy": placed, "migrate": placed, "recover": recovered}
    fn = choices.get(action, command)
    vm_app.command(action, help=VM_ACTIONS[action])(fn)


for _action in VM_ACTIONS:
    _action_command(_action)


@vm_app.command("resize")
def vm_resize(
    vm_id: int,
    vcpu: Annotated[int | None, typer.Option()] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb")] = None,
    wait: Wait = False,
    timeout: Timeout = 300,
    version: Version = None,
) -> None:
    """Resize a VM that is not running."""
    run(lambda: _do_action(vm_id, "resize", compact(vcpu=vcpu, memory_mb=memory_mb), True, wait, timeout, version))


@vm_app.command("history")
def vm_history(vm_id: int) -> None:
    """The VM's placements (host stays) and state changes."""

    def do() -> None:
        h = api().get(f"vms/{vm_id}/history/")
        if state.output != Output.table:
            show(h)
            return
        show(h["placements"], [("host", "Host"), ("start_reason", "Why"), ("started_at", "From"),
                               ("ended_at", "Until"), ("end_reason", "Ended")], title="Placements")  # fmt: skip
        show(h["state_changes"], [("created_at", "Time"), ("from_state", "From"), ("to_state", "To"),
                                  ("reason", "Reason")], title="State changes")  # fmt: skip

    run(do)


@vm_app.command("disks")
def vm_disks(vm_id: int) -> None:
    """The VM's disks (images, volumes, empty disks)."""
    run(lambda: show(api().list("vm-disks/", vm=vm_id), [
        ("id", "ID"), ("target", "Target"), ("kind", "Kind"), ("image", "Image"), ("volume", "Volume"),
        ("size_bytes", "Bytes"), ("state", "State")]))  # fmt: skip


# ------------------------------------------------------------------------------- templates
def _template_body(**values: Any) -> dict[str, Any]:
    labels = values.pop("labels")
    body = compact(**values)
    if labels:
        body["required_labels"] = pairs(labels, "--label")
    return body


@template_app.command("create")
def template_create(
    name: str,
    vcpu: Annotated[int, typer.Option()] = 1,
    memory_mb: Annotated[int, typer.Option("--memory-mb")] = 512,
    disk_gb: Annotated[int | None, typer.Option("--disk-gb")] = None,
    boot_image: Annotated[int | None, typer.Option("--boot-image", help="a boot image's id")] = None,
    cluster: Annotated[int | None, typer.Option(help="pin its VMs to this cluster")] = None,
    hypervisor: Annotated[str | None, typer.Option()] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="a host label KEY=VALUE VMs need")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    public: Annotated[bool | None, typer.Option("--public/--private", help="cloud admins")] = None,
) -> None:
    """Create a VM template in --project."""

    def do() -> None:
        a = api()
        body = _template_body(project=need_project(a), name=name, vcpu=vcpu, memory_mb=memory_mb, disk_gb=disk_gb,
                              boot_image=boot_image, cluster=cluster, hypervisor=hypervisor, labels=labels,
                              description=description, public=public)  # fmt: skip
        show(a.post("templates/", body), RESOURCES["template"].columns)

    run(do)


@template_app.command("update")
def template_update(
    template_id: int,
    name: Annotated[str | None, typer.Option()] = None,
    vcpu: Annotated[int | None, typer.Option()] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb")] = None,
    disk_gb: Annotated[int | None, typer.Option("--disk-gb")] = None,
    boot_image: Annotated[int | None, typer.Option("--boot-image")] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE (replaces the labels)")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    public: Annotated[bool | None, typer.Option("--public/--private")] = None,
) -> None:
    """Change a template (only the options given)."""

    def do() -> None:
        body = _template_body(name=name, vcpu=vcpu, memory_mb=memory_mb, disk_gb=disk_gb, boot_image=boot_image,
                              labels=labels, description=description, public=public)  # fmt: skip
        show(api().patch(f"templates/{template_id}/", body), RESOURCES["template"].columns)

    run(do)


share_commands(template_app, "templates/", "template")


# ------------------------------------------------------------------------------- hosts
@host_app.command("add")
def host_add(
    name: str,
    uri: Annotated[str, typer.Option(help="the libvirt URI, e.g. qemu+ssh://root@node1/system")],
    hypervisor: Annotated[str | None, typer.Option(help="qemu (default), kvm, test …")] = None,
    driver: Annotated[str | None, typer.Option()] = None,
    cluster: Annotated[int | None, typer.Option(help="the cluster's id")] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE (repeatable)")] = None,
    priority: Annotated[int | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option(help="the agent serving it (default local)")] = None,
) -> None:
    """Register a hypervisor host (cloud admins); it is probed in the background."""

    def do() -> None:
        body = compact(name=name, uri=uri, hypervisor=hypervisor, driver=driver, cluster=cluster,
                       priority=priority, agent=agent)  # fmt: skip
        if labels:
            body["labels"] = pairs(labels, "--label")
        show(api().post("hosts/", body), RESOURCES["host"].columns)

    run(do)


def _host_state(action: str, doc: str) -> None:
    def command(host_id: int) -> None:
        run(lambda: show(api().post(f"hosts/{host_id}/action/", {"action": action}), RESOURCES["host"].columns))

    host_app.command(action, help=doc)(command)


_host_state("enable", "Let the scheduler place VMs on a host again.")
_host_state("disable", "Keep the scheduler from placing new VMs on a host (its VMs keep running).")
_host_state("offline", "Take an empty host out of service (refused while VMs live on it).")


# ------------------------------------------------------------------------------- clusters
Policy = Annotated[str | None, typer.Option("--policy", help="placement policy: packing, striping, load_aware, fixed")]


@cluster_app.command("create")
def cluster_create(name: str, policy: Policy = None,
                   description: Annotated[str | None, typer.Option()] = None) -> None:  # fmt: skip
    """Create a cluster (cloud admins)."""
    body = compact(name=name, placement_policy=policy, description=description)
    run(lambda: show(api().post("clusters/", body), RESOURCES["cluster"].columns))


@cluster_app.command("update")
def cluster_update(
    cluster_id: int,
    name: Annotated[str | None, typer.Option()] = None,
    policy: Policy = None,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a cluster (only the options given)."""
    body = compact(name=name, placement_policy=policy, description=description)
    run(lambda: show(api().patch(f"clusters/{cluster_id}/", body), RESOURCES["cluster"].columns))
