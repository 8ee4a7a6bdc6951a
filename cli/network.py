"""``nephele network``, ``secgroup``, ``publicip``, ``ippool``, ``nic``: the network manager's own
commands (list, show and delete come from cli.resources)."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import USAGE, CliError
from .common import api, compact, confirm, need_project, report, run, show
from .resources import RESOURCES, typer_for

network_app = typer_for("network")
secgroup_app = typer_for("secgroup")
publicip_app = typer_for("publicip")
ippool_app = typer_for("ippool")
nic_app = typer_for("nic")
RULE_COLUMNS = [("id", "ID"), ("direction", "Direction"), ("ethertype", "Ether"), ("protocol", "Protocol"),
                ("port_min", "From port"), ("port_max", "To port"), ("cidr", "CIDR"),
                ("remote_group", "Remote group")]  # fmt: skip
Opt = typer.Option


# ------------------------------------------------------------------------------- networks
@network_app.command("create")
def network_create(
    name: str,
    cidr4: Annotated[str | None, Opt(help="IPv4 subnet, e.g. 10.0.5.0/24 (its hosts become one range)")] = None,
    gateway4: Annotated[str | None, Opt()] = None,
    cidr6: Annotated[str | None, Opt()] = None,
    gateway6: Annotated[str | None, Opt()] = None,
    dns: Annotated[str | None, Opt(help="name servers, comma-separated")] = None,
    mtu: Annotated[int | None, Opt(min=576, max=9000)] = None,
    visibility: Annotated[str | None, Opt(help="private (default); shared or public: cloud admins")] = None,
    isolation: Annotated[str | None, Opt(help="vxlan (default) or vlan")] = None,
    description: Annotated[str | None, Opt()] = None,
) -> None:
    """Create a virtual network in --project."""

    def do() -> None:
        a = api()
        body = {"project": need_project(a), "name": name, **compact(
            cidr4=cidr4, gateway4=gateway4, cidr6=cidr6, gateway6=gateway6, dns=dns, mtu=mtu,
            visibility=visibility, isolation=isolation, description=description)}  # fmt: skip
        show(a.post("networks/", body), RESOURCES["network"].columns)

    run(do)


@network_app.command("update")
def network_update(
    network_id: int,
    name: Annotated[str | None, Opt()] = None,
    description: Annotated[str | None, Opt()] = None,
    dns: Annotated[str | None, Opt()] = None,
    visibility: Annotated[str | None, Opt()] = None,
) -> None:
    """Change a network's name, description, name servers or visibility."""
    body = compact(name=name, description=description, dns=dns, visibility=visibility)
    run(lambda: show(api().patch(f"networks/{network_id}/", body), RESOURCES["network"].columns))


@network_app.command("leases")
def network_leases(network_id: int) -> None:
    """The addresses handed out on a network."""
    run(lambda: show(api().list("leases/", network=network_id), [
        ("id", "ID"), ("address", "IPv4"), ("ipv6", "IPv6"), ("mac", "MAC"), ("kind", "Kind"), ("vm", "VM"),
        ("nic", "NIC")]))  # fmt: skip


# ------------------------------------------------------------------------------- security groups
@secgroup_app.command("create")
def secgroup_create(name: str, description: Annotated[str | None, Opt()] = None) -> None:
    """Create a security group in --project (it starts without rules: nothing comes in)."""

    def do() -> None:
        a = api()
        body = {"project": need_project(a), "name": name, **compact(description=description)}
        show(a.post("security-groups/", body), RESOURCES["secgroup"].columns)

    run(do)


@secgroup_app.command("rules")
def secgroup_rules(group_id: int) -> None:
    """A security group's rules."""
    run(lambda: show(api().list("security-group-rules/", group=group_id), RULE_COLUMNS))


@secgroup_app.command("rule-add")
def secgroup_rule_add(
    group_id: int,
    direction: Annotated[str, Opt(help="ingress or egress")] = "ingress",
    ethertype: Annotated[str, Opt(help="ipv4 or ipv6")] = "ipv4",
    protocol: Annotated[str, Opt(help="any, tcp, udp or icmp")] = "any",
    port: Annotated[str | None, Opt(help="a port or a range: 22 or 8000-8080 (tcp, udp)")] = None,
    cidr: Annotated[str | None, Opt(help="from (ingress) / to (egress) these addresses")] = None,
    remote_group: Annotated[int | None, Opt("--remote-group", help="or: the members of this group")] = None,
) -> None:
    """Allow traffic into (or out of) a security group's members."""

    def do() -> None:
        body = {"group": group_id, "direction": direction, "ethertype": ethertype, "protocol": protocol,
                **compact(cidr=cidr, remote_group=remote_group)}  # fmt: skip
        if port:
            low, _, high = port.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise CliError(f"--port takes a port or a range like 8000-8080, not {port!r}", USAGE, "port_min")
            body["port_min"], body["port_max"] = int(low), int(high or low)
        show(api().post("security-group-rules/", body), RULE_COLUMNS)

    run(do)


@secgroup_app.command("rule-remove")
def secgroup_rule_remove(
    rule_id: int, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False
) -> None:
    """Remove one rule (asks first)."""

    def do() -> None:
        confirm(f"Remove security group rule {rule_id}? The traffic it allowed is dropped.", yes)
        api().delete(f"security-group-rules/{rule_id}/")
        report(f"rule {rule_id}: removed", {"id": rule_id, "result": "removed"})

    run(do)


# ------------------------------------------------------------------------------- public IPs
PIP_COLUMNS = RESOURCES["publicip"].columns


@publicip_app.command("allocate")
def publicip_allocate(pool: Annotated[int | None, Opt(help="from this pool (default: any with room)")] = None) -> None:
    """Allocate the next free public address to --project."""

    def do() -> None:
        a = api()
        show(a.post("public-ips/", {"project": need_project(a), **compact(pool=pool)}), PIP_COLUMNS)

    run(do)


@publicip_app.command("attach")
def publicip_attach(ip_id: int, nic: Annotated[int, Opt(help="the NIC's id (nephele nic list -f vm=ID)")]) -> None:
    """NAT a public IP 1:1 to a NIC's IPv4."""
    run(lambda: show(api().post(f"public-ips/{ip_id}/associate/", {"nic": nic}), PIP_COLUMNS))


@publicip_app.command("detach")
def publicip_detach(ip_id: int) -> None:
    """Take a public IP off its NIC (the project keeps it)."""
    run(lambda: show(api().post(f"public-ips/{ip_id}/disassociate/", None), PIP_COLUMNS))


@ippool_app.command("create")
def ippool_create(
    name: str,
    cidr: Annotated[str, Opt(help="the public subnet, e.g. 203.0.113.0/24")],
    first: Annotated[str, Opt(help="the first address handed out")],
    last: Annotated[str, Opt(help="the last address handed out")],
) -> None:
    """Define a public IP pool (cloud admins)."""
    body = {"name": name, "cidr": cidr, "first": first, "last": last}
    run(lambda: show(api().post("public-ip-pools/", body), RESOURCES["ippool"].columns))


# ------------------------------------------------------------------------------- NICs
@nic_app.command("attach")
def nic_attach(
    vm: Annotated[int, Opt(help="the VM's id")],
    network: Annotated[int, Opt(help="the network's id (yours, shared or public)")],
    fixed_ip: Annotated[str | None, Opt("--ip", help="this IPv4 address")] = None,
    groups: Annotated[list[int] | None, Opt("--secgroup", help="a security group (repeatable)")] = None,
) -> None:
    """Give a VM a NIC on a network (hot where the host can)."""
    body = {"vm": vm, "network": network, **compact(fixed_ip=fixed_ip, groups=groups)}
    run(lambda: show(api().post("nics/", body), RESOURCES["nic"].columns))


@nic_app.command("secgroups")
def nic_secgroups(nic_id: int, groups: Annotated[list[int], typer.Argument(help="security group ids")]) -> None:
    """Put a NIC in exactly these security groups."""
    body = {"security_groups": groups}
    run(lambda: show(api().post(f"nics/{nic_id}/security-groups/", body), RESOURCES["nic"].columns))
