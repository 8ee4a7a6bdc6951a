"""The table of API resources the CLI knows, and the one code path for what they share:
``list`` (filters, paging), ``show`` and ``delete`` (confirmed, or with ``--yes``).

Each manager's own commands (create, actions, upload …) live in its module and add themselves
to ``typer_for(name)``; ``cli.main`` mounts every sub-app under its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from .client import USAGE, CliError
from .common import Columns, Output, api, compact, confirm, out, pairs, project_id, run, show, state, wait_state


@dataclass(frozen=True)
class Resource:
    name: str  # the CLI's word: `nephele image …`
    path: str  # the API's collection: images/
    help: str
    columns: Columns
    noun: str = ""  # for messages ("public IP"); default: name
    project_filter: bool = False  # `list` narrows to --project (or the profile's project)
    listing: bool = True
    show: bool = True
    delete: bool = True
    delete_verb: str = "delete"  # `token revoke`, `publicip release`, `sshkey remove`
    delete_warning: str = ""
    delete_async: bool = False  # DELETE answers 202: --wait waits until the object is gone
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return self.noun or self.name


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in [
        Resource("vm", "vms/", "Virtual machines: create, actions (with --wait), resize, history.",
                 [("id", "ID"), ("name", "Name"), ("state", "State"), ("operation", "Operation"), ("host", "Host"),
                  ("vcpu", "vCPU"), ("memory_mb", "MiB"), ("project", "Project")], noun="VM", listing=False,
                 delete=False),
        Resource("template", "templates/", "VM templates (instance types).",
                 [("id", "ID"), ("name", "Name"), ("vcpu", "vCPU"), ("memory_mb", "MiB"), ("disk_gb", "GiB"),
                  ("project", "Project"), ("public", "Public")], project_filter=True),
        Resource("boot-image", "boot-images/", "Boot sources registered by path on the hosts.",
                 [("id", "ID"), ("name", "Name"), ("kind", "Kind"), ("project", "Project"), ("public", "Public"),
                  ("disk_path", "Disk"), ("kernel_path", "Kernel")], noun="boot image"),
        Resource("image", "images/", "Images: upload (resumable), convert, clone, share, publish.",
                 [("id", "ID"), ("name", "Name"), ("state", "State"), ("progress", "%"), ("type", "Type"),
                  ("format", "Format"), ("size_bytes", "Bytes"), ("visibility", "Visibility"), ("project", "Project")],
                 project_filter=True, delete_warning="Its file is removed."),
        Resource("volume", "volumes/", "Volumes: create, attach, detach, grow, snapshots.",
                 [("id", "ID"), ("name", "Name"), ("state", "State"), ("size_gb", "GiB"), ("format", "Format"),
                  ("vm", "VM"), ("target", "Target"), ("project", "Project")],
                 project_filter=True, delete_warning="Its data is lost.", delete_async=True),
        Resource("network", "networks/", "Virtual networks.",
                 [("id", "ID"), ("name", "Name"), ("cidr4", "IPv4"), ("gateway4", "Gateway"), ("vni", "VNI"),
                  ("visibility", "Visibility"), ("leases_used", "Leases"), ("project", "Project")],
                 project_filter=True),
        Resource("nic", "nics/", "NICs of VMs (filter with --filter vm=ID).",
                 [("id", "ID"), ("vm", "VM"), ("network", "Network"), ("name", "Name"), ("ipv4", "IPv4"),
                  ("mac", "MAC"), ("security_groups", "Groups")], noun="NIC", delete_verb="detach",
                 delete_warning="The VM loses this interface."),
        Resource("secgroup", "security-groups/", "Security groups and their rules.",
                 [("id", "ID"), ("name", "Name"), ("project", "Project"), ("is_default", "Default"),
                  ("description", "Description")], noun="security group", project_filter=True),
        Resource("publicip", "public-ips/", "Public IPs: allocate, attach to a NIC, detach, release.",
                 [("id", "ID"), ("address", "Address"), ("pool", "Pool"), ("project", "Project"), ("nic", "NIC"),
                  ("private_ip", "Private IP")], noun="public IP", project_filter=True, delete_verb="release"),
        Resource("ippool", "public-ip-pools/", "Public IP pools (cloud admins define them).",
                 [("id", "ID"), ("name", "Name"), ("cidr", "CIDR"), ("first", "First"), ("last", "Last")],
                 noun="public IP pool"),
        Resource("host", "hosts/", "Hypervisor hosts (cloud admins).",
                 [("id", "ID"), ("name", "Name"), ("state", "State"), ("cluster", "Cluster"),
                  ("hypervisor", "Hypervisor"), ("total_vcpu", "vCPU"), ("alloc_vcpu", "Allocated"),
                  ("total_memory_mb", "MiB"), ("alloc_memory_mb", "Allocated MiB"), ("uri", "URI")],
                 delete_warning="It must run no VM."),
        Resource("datastore", "datastores/", "Datastores (cloud admins).",
                 [("id", "ID"), ("name", "Name"), ("kind", "Kind"), ("driver", "Driver"), ("state", "State"),
                  ("used_percent", "Used %"), ("free_bytes", "Free bytes"), ("path", "Path")]),
        Resource("cluster", "clusters/", "Clusters of hosts (cloud admins).",
                 [("id", "ID"), ("name", "Name"), ("placement_policy", "Policy"), ("description", "Description")]),
        Resource("project", "projects/", "Projects, their members and quotas.",
                 [("id", "ID"), ("name", "Name"), ("organization", "Organization"), ("description", "Description")],
                 delete_warning="It must own no resources."),
        Resource("org", "organizations/", "Organizations (tenants).",
                 [("id", "ID"), ("name", "Name"), ("enabled", "Enabled"), ("require_2fa", "2FA"),
                  ("description", "Description")], noun="organization", delete_warning="It must have no projects."),
        Resource("user", "users/", "User accounts (cloud admins).",
                 [("id", "ID"), ("username", "User"), ("email", "E-mail"), ("is_active", "Active"),
                  ("is_staff", "Cloud admin"), ("last_login", "Last login")],
                 delete_warning="The account and its credentials are removed."),
        Resource("token", "tokens/", "Your API tokens.",
                 [("id", "ID"), ("name", "Name"), ("prefix", "Prefix"), ("project", "Project"),
                  ("expires_at", "Expires"), ("last_used_at", "Last used"), ("revoked_at", "Revoked")],
                 noun="API token", delete_verb="revoke", delete_warning="Scripts using it stop working."),
        Resource("sshkey", "ssh-keys/", "Your SSH public keys (given to new VMs).",
                 [("id", "ID"), ("name", "Name"), ("fingerprint", "Fingerprint"), ("created_at", "Added")],
                 noun="SSH key", show=False, delete_verb="remove"),
        Resource("event", "events/", "The event stream: list, or follow live.", [], listing=False, delete=False),
        Resource("webhook", "webhooks/", "Webhooks on event types (cloud admins).",
                 [("id", "ID"), ("name", "Name"), ("url", "URL"), ("event_types", "Events"), ("enabled", "Enabled")]),
        Resource("audit", "audit/", "The audit trail: who did what, when, from where.",
                 [("id", "ID"), ("created_at", "Time"), ("actor_name", "Actor"), ("action", "Action"),
                  ("object_type", "Type"), ("object_id", "Object"), ("object_name", "Name"), ("result", "Result")],
                 delete=False),
    ]
}  # fmt: skip

_APPS: dict[str, typer.Typer] = {}


def typer_for(name: str) -> typer.Typer:
    """The sub-app of ``nephele <name>``, with the generic commands of its resource."""
    if name not in _APPS:
        res = RESOURCES[name]
        sub = typer.Typer(help=res.help, no_args_is_help=True)
        if res.listing:
            sub.command("list")(_lister(res))
        if res.show:
            sub.command("show")(_shower(res))
        if res.delete:
            sub.command(res.delete_verb)(_deleter(res))
        _APPS[name] = sub
    return _APPS[name]


def all_apps() -> dict[str, typer.Typer]:
    for name in RESOURCES:
        typer_for(name)
    return _APPS


def _lister(res: Resource) -> Callable[..., None]:
    def command(
        filters: Annotated[
            list[str] | None, typer.Option("--filter", "-f", help="an API filter, KEY=VALUE (repeatable)")
        ] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many rows")] = 100,
    ) -> None:
        def do() -> None:
            a = api()
            params: dict[str, object] = dict(pairs(filters, "--filter"))
            if res.project_filter and "project" not in params:
                params.update(compact(project=project_id(a)))
            show(a.list(res.path, limit=limit, **params), res.columns)

        run(do)

    command.__doc__ = f"List {res.label}s you may see" + (" (of --project when given)." if res.project_filter else ".")
    return command


def _shower(res: Resource) -> Callable[..., None]:
    def command(object_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
        run(lambda: show(api().get(f"{res.path}{object_id}/"), res.columns))

    command.__doc__ = f"One {res.label}, every field."
    return command


def _deleter(res: Resource) -> Callable[..., None]:
    def command(
        ids: Annotated[list[int], typer.Argument(metavar="ID...", help="one or more ids")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
        wait: Annotated[bool, typer.Option(help="wait until it is gone")] = False,
        timeout: Annotated[float, typer.Option(help="seconds --wait waits")] = 300,
    ) -> None:
        def do() -> None:
            which = ", ".join(str(i) for i in ids)
            confirm(f"{res.delete_verb.capitalize()} {res.label} {which}? {res.delete_warning}".strip(), yes)
            a = api()
            results = []
            for object_id in ids:
                a.delete(f"{res.path}{object_id}/")
                if wait and res.delete_async:
                    _wait_gone(a, res, object_id, timeout)
                done = f"{res.delete_verb}{'d' if res.delete_verb.endswith('e') else 'ed'}"
                results.append({"id": object_id, "result": done})
                if state.output == Output.table:
                    out.print(f"{res.label} {object_id}: {done}", highlight=False)
            if state.output != Output.table:
                show(results)

        run(do)

    command.__doc__ = f"{res.delete_verb.capitalize()} {res.label}s (asks first unless --yes)."
    return command


WithProject = Annotated[int | None, typer.Option("--with-project", help="the project to share with")]
WithUser = Annotated[str | None, typer.Option("--with-user", help="the user name to share with")]


def _wait_gone(a: Any, res: Resource, object_id: int, timeout: float) -> None:
    """Until an object whose DELETE answered 202 is gone (404); its error state fails."""

    def line(obj: dict[str, Any]) -> str:
        return f"{res.label} {object_id}: {obj.get('state')}"

    def failed(obj: dict[str, Any]) -> str:
        return str(obj.get("state_message") or "failed") if obj.get("state") == "error" else ""

    wait_state(a, f"{res.path}{object_id}/", lambda obj: True, line, timeout, failed=failed, gone_ok=True)


def share_commands(sub: typer.Typer, path: str, noun: str) -> None:
    """``share``, ``unshare`` and ``shares`` for templates and images (the API's ``shares/``)."""

    def target(project: int | None, user: str | None) -> dict[str, Any]:
        if (project is None) == (user is None):
            raise CliError("name one recipient: --with-project ID or --with-user NAME", USAGE, "project")
        return compact(project=project, user=user)

    @sub.command("share")
    def share(object_id: int, with_project: WithProject = None, with_user: WithUser = None) -> None:
        run(lambda: show(api().post(f"{path}{object_id}/shares/", target(with_project, with_user))))

    share.__doc__ = f"Share a {noun} with a project or a user (they may see and use it)."

    @sub.command("unshare")
    def unshare(object_id: int, with_project: WithProject = None, with_user: WithUser = None) -> None:
        run(lambda: show(api().delete(f"{path}{object_id}/shares/", target(with_project, with_user))))

    unshare.__doc__ = f"Stop sharing a {noun} with a project or a user."

    @sub.command("shares")
    def shares(object_id: int) -> None:
        run(lambda: show(api().get(f"{path}{object_id}/shares/")))

    shares.__doc__ = f"Who a {noun} is shared with."
