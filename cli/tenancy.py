"""``nephele project``, ``org``, ``user``, ``role``, ``quota``, ``token``, ``sshkey``: tenancy and
credentials (list, show and delete come from cli.resources)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .client import USAGE, CliError
from .common import api, compact, err, need_project, run, show
from .resources import RESOURCES, typer_for

project_app = typer_for("project")
org_app = typer_for("org")
user_app = typer_for("user")
token_app = typer_for("token")
sshkey_app = typer_for("sshkey")
role_app = typer.Typer(help="Roles in projects and organizations: who may do what.", no_args_is_help=True)
quota_app = typer.Typer(help="Quotas of a project: usage and limits.", no_args_is_help=True)
Opt = typer.Option
MEMBER_COLUMNS = [("user", "User"), ("role", "Role")]
QUOTA_COLUMNS = [("resource", "Resource"), ("label", "What"), ("used", "Used"), ("limit", "Limit"),
                 ("percent", "%")]  # fmt: skip
#: project roles (tenants.roles.Role) and what each allows (docs/roles.md)
ROLES = [
    {"role": "admin", "scope": "project", "allows": "view, manage, admin (members, quotas, deletion)"},
    {"role": "member", "scope": "project", "allows": "view, manage (create and operate resources)"},
    {"role": "viewer", "scope": "project", "allows": "view"},
    {"role": "admin", "scope": "organization", "allows": "view, manage, admin in every project of it"},
]


# ------------------------------------------------------------------------------- projects
@project_app.command("create")
def project_create(
    name: str,
    organization: Annotated[int, Opt(help="the organization's id (one you administer)")],
    description: Annotated[str | None, Opt()] = None,
) -> None:
    """Create a project (organization and cloud admins)."""
    body = {"name": name, "organization": organization, **compact(description=description)}
    run(lambda: show(api().post("projects/", body), RESOURCES["project"].columns))


@project_app.command("members")
def project_members(project_id: int) -> None:
    """Who holds which role in a project."""
    run(lambda: show(api().get(f"projects/{project_id}/members/"), MEMBER_COLUMNS))


@org_app.command("create")
def org_create(
    name: str,
    description: Annotated[str | None, Opt()] = None,
    require_2fa: Annotated[bool | None, Opt("--require-2fa/--no-require-2fa")] = None,
) -> None:
    """Create an organization (cloud admins)."""
    body = {"name": name, **compact(description=description, require_2fa=require_2fa)}
    run(lambda: show(api().post("organizations/", body), RESOURCES["org"].columns))


# ------------------------------------------------------------------------------- users
@user_app.command("create")
def user_create(
    username: str,
    email: Annotated[str | None, Opt()] = None,
    first_name: Annotated[str | None, Opt("--first-name")] = None,
    last_name: Annotated[str | None, Opt("--last-name")] = None,
    password: Annotated[str | None, Opt(envvar="NEPHELE_NEW_PASSWORD", hidden=True)] = None,
    ask_password: Annotated[bool, Opt("--password", help="ask for a password (else none: set one later)")] = False,
) -> None:
    """Create a user account (cloud admins)."""

    def do() -> None:
        secret = password or (
            typer.prompt("Password", hide_input=True, confirmation_prompt=True) if ask_password else None
        )
        body = {"username": username, **compact(email=email, first_name=first_name, last_name=last_name,
                                                password=secret)}  # fmt: skip
        show(api().post("users/", body), RESOURCES["user"].columns)

    run(do)


def _user_action(command: str, doc: str) -> None:
    def fn(user_id: int) -> None:
        run(lambda: show(api().post(f"users/{user_id}/action/", {"action": command}), RESOURCES["user"].columns))

    user_app.command(command, help=doc)(fn)


_user_action("enable", "Let a disabled account sign in again.")
_user_action("disable", "Keep an account from signing in (its tokens stop working).")


@user_app.command("reset-credentials")
def user_reset(
    user_id: int,
    password: Annotated[str | None, Opt(envvar="NEPHELE_NEW_PASSWORD", hidden=True)] = None,
    ask_password: Annotated[bool, Opt("--password", help="ask for a new password")] = False,
    yes: Annotated[bool, Opt("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Revoke a user's tokens and second factor, optionally setting a new password (asks first)."""
    from .common import confirm

    def do() -> None:
        confirm(f"Reset the credentials of user {user_id}? Their tokens stop working.", yes)
        secret = password or (
            typer.prompt("Password", hide_input=True, confirmation_prompt=True) if ask_password else None
        )
        body = {"action": "reset-credentials", **compact(password=secret)}
        show(api().post(f"users/{user_id}/action/", body), RESOURCES["user"].columns)

    run(do)


# ------------------------------------------------------------------------------- roles
@role_app.command("list")
def role_list(
    known: Annotated[bool, Opt("--known", help="the roles there are and what each allows")] = False,
) -> None:
    """The members of --project and their roles (--known: the roles there are)."""

    def do() -> None:
        if known:
            show(ROLES, [("role", "Role"), ("scope", "On"), ("allows", "Allows")])
            return
        a = api()
        show(a.get(f"projects/{need_project(a)}/members/"), MEMBER_COLUMNS)

    run(do)


def _grant(user: str, role: str | None, organization: int | None) -> None:
    a = api()
    if organization is not None:
        show(a.post(f"organizations/{organization}/roles/", {"user": user, "role": role}))
        return
    show(a.post(f"projects/{need_project(a)}/members/", {"user": user, "role": role}), MEMBER_COLUMNS)


Org = Annotated[int | None, Opt("--organization", help="an organization role instead of --project's")]


@role_app.command("grant")
def role_grant(
    user: Annotated[str, typer.Argument(help="the user name")],
    role: Annotated[str, typer.Argument(help="admin, member or viewer (organizations: admin)")],
    organization: Org = None,
) -> None:
    """Give a user a role in --project (or an organization); replaces the role they had."""
    run(lambda: _grant(user, role, organization))


@role_app.command("revoke")
def role_revoke(user: Annotated[str, typer.Argument(help="the user name")], organization: Org = None) -> None:
    """Take a user's role in --project (or an organization) away."""
    run(lambda: _grant(user, None, organization))


# ------------------------------------------------------------------------------- quotas
@quota_app.command("show")
def quota_show(
    defaults: Annotated[bool, typer.Option("--defaults", help="the cloud-wide defaults (cloud admins)")] = False,
) -> None:
    """Usage and limit per resource of --project (-1: unlimited), or the cloud-wide defaults."""

    def do() -> None:
        a = api()
        if defaults:
            show(a.get("quota-defaults/"), QUOTA_COLUMNS)
            return
        show(a.get(f"projects/{need_project(a)}/quotas/"), QUOTA_COLUMNS)

    run(do)


@quota_app.command("set")
def quota_set(
    resource: Annotated[str, typer.Argument(help="vms, running_vms, vcpu, memory_mb, system_disk_gb, volumes, …")],
    limit: Annotated[int, typer.Argument(help="the limit; -1: unlimited")],
    user: Annotated[int | None, Opt(help="a limit for this user (id) within the project")] = None,
    default: Annotated[bool, typer.Option("--default", help="set the cloud-wide default instead")] = False,
) -> None:
    """Set a limit of --project, or a cloud-wide default (cloud admins)."""

    def do() -> None:
        a = api()
        if default:
            show(a.post("quota-defaults/", {"resource": resource, "limit": limit}), QUOTA_COLUMNS)
            return
        body = {"resource": resource, "limit": limit, **compact(user=user)}
        show(a.post(f"projects/{need_project(a)}/quotas/", body), QUOTA_COLUMNS)

    run(do)


# ------------------------------------------------------------------------------- tokens, keys
@token_app.command("create")
def token_create(
    name: str,
    days: Annotated[int | None, Opt(min=1, help="lifetime (default: the cloud's maximum)")] = None,
    confine: Annotated[int | None, Opt("--confine", help="confine it to this project")] = None,
) -> None:
    """Make an API token; its secret is shown once."""

    def do() -> None:
        made: dict[str, Any] = api().post("tokens/", {"name": name, **compact(days=days, project=confine)})
        show(made, RESOURCES["token"].columns)
        err.print("the secret (token) is shown only now: keep it safe", highlight=False)

    run(do)


@sshkey_app.command("add")
def sshkey_add(
    name: str,
    file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="a .pub file")] = None,
    key: Annotated[str | None, Opt(help="the public key itself (instead of FILE)")] = None,
) -> None:
    """Add an SSH public key (given to the VMs you create)."""

    def do() -> None:
        if (file is None) == (key is None):
            raise CliError("give FILE or --key, one of them", USAGE, "public_key")
        text = key if key is not None else file.read_text().strip()  # type: ignore[union-attr]
        show(api().post("ssh-keys/", {"name": name, "public_key": text}), RESOURCES["sshkey"].columns)

    run(do)
