"""``nephele``: the command line of a Nephele cloud, over its REST API (docs/cli.md).

The managers' commands live in their modules (cli.compute, cli.images, cli.storage,
cli.network, cli.tenancy, cli.events); what they share — list, show, delete — comes from the
resource table in cli.resources. Importing a module registers its commands.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import compute, console, events, images, network, power, storage, tenancy  # noqa: F401 - they register their commands
from .client import AUTH, Api, CliError, load_config, profile, save_config, token_from_password
from .common import Output, out, report, run, show, state
from .resources import all_apps

app = typer.Typer(help="Nephele cloud: VMs, templates, images, volumes, networks, hosts and more, from the command line.",
                  no_args_is_help=True, pretty_exceptions_enable=False)  # fmt: skip
profile_app = typer.Typer(help="The clouds you are logged in to (profiles).", no_args_is_help=True)


@app.callback()
def main_options(
    profile_name: Annotated[
        str | None, typer.Option("--profile", envvar="NEPHELE_PROFILE", help="the cloud to talk to (see login)")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")] = Output.table,
    project: Annotated[int | None, typer.Option(help="the project to act in (default: the profile's)")] = None,
) -> None:
    state.profile, state.output, state.project = profile_name, output, project


# ------------------------------------------------------------------------------- login, profiles
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


@app.command()
def logout(
    name: Annotated[str | None, typer.Option("--as", help="the profile (default: the current one)")] = None,
    revoke: Annotated[bool, typer.Option(help="also revoke the profile's token on the server")] = True,
) -> None:
    """Forget a profile (and revoke its token, unless --no-revoke)."""

    def do() -> None:
        config = load_config()
        which = name or state.profile or config.get("current") or "default"
        if which not in config.get("profiles", {}):
            raise CliError(f"no profile {which!r}", AUTH, "profile")
        if revoke:
            a = Api(profile(which))
            # a secret reads nph_<prefix>_<random>; the API lists tokens by their prefix
            prefix = a.profile.token.split("_")[1] if a.profile.token.count("_") >= 2 else ""
            try:
                mine = [t for t in a.list("tokens/") if t["prefix"] == prefix and not t["revoked_at"]]
            except CliError as exc:
                if exc.code != AUTH:
                    raise  # unreachable: keep the profile, so the token can still be revoked
                mine = []  # the server refuses the token already (expired, revoked): nothing to revoke
            for t in mine:
                a.delete(f"tokens/{t['id']}/")
        del config["profiles"][which]
        if config.get("current") == which:
            config["current"] = next(iter(config["profiles"]), "default")
        save_config(config)
        report(f"profile {which!r} removed", {"profile": which, "result": "removed"})

    run(do)


@profile_app.command("list")
def profile_list() -> None:
    """The stored profiles (the current one marked)."""
    config = load_config()
    rows = [{"name": n, "url": p.get("url"), "project": p.get("project"), "current": n == config.get("current")}
            for n, p in config.get("profiles", {}).items()]  # fmt: skip
    show(rows, [("name", "Profile"), ("url", "URL"), ("project", "Default project"), ("current", "Current")])


@profile_app.command("use")
def profile_use(
    name: str,
    project: Annotated[int | None, typer.Option("--default-project", help="also set its default project")] = None,
) -> None:
    """Make a profile the current one (and optionally change its default project)."""

    def do() -> None:
        config = load_config()
        if name not in config.get("profiles", {}):
            raise CliError(f"no profile {name!r}: run `nephele login --as {name}`", AUTH, "profile")
        config["current"] = name
        if project is not None:
            config["profiles"][name]["project"] = project
        save_config(config)
        report(f"profile {name!r} is current", {"profile": name, "result": "current"})

    run(do)


app.add_typer(profile_app, name="profile")
for _name, _sub in all_apps().items():
    app.add_typer(_sub, name=_name)
app.add_typer(tenancy.role_app, name="role")
app.add_typer(tenancy.quota_app, name="quota")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
