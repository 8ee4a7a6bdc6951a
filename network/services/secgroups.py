"""Services for security groups and their rules (stateful allow rules; everything else inbound is dropped)."""

from __future__ import annotations

import ipaddress

from django.contrib.auth.models import User
from django.db import transaction

from portal.errors import Conflict, InvalidInput, NotFound
from tenants.models import Project
from tenants.querysets import Actor

from ..models import Direction, EtherType, Protocol, SecurityGroup, SecurityGroupRule
from .common import audit, check_name, lock, managed_project, parse_cidr

DEFAULT_NAME = "default"


def _refresh_members(group: SecurityGroup) -> None:
    """Re-apply the filters of the running NICs the change affects (after commit, on their hosts)."""
    from .nics import refresh_group

    refresh_group(group)


@transaction.atomic
def create_group(
    actor: User, *, project: Project, name: str, description: str = "", ip: str | None = None
) -> SecurityGroup:
    """A new, empty group: it allows nothing inbound until rules are added (outbound: nothing either,
    unless an egress rule is added — NICs in no group with egress rules may send anywhere)."""
    project = managed_project(actor, project)
    check_name(name)
    if SecurityGroup.objects.filter(project=project, name=name).exists():
        raise Conflict(f"this project has a security group named {name!r} already", field="name")
    group = SecurityGroup.objects.create(project=project, owner=actor, name=name, description=description)
    audit(actor, group, "create", ip=ip)
    return group


def default_group(project: Project, actor: User) -> SecurityGroup:
    """The project's default group, made on first use: members talk to each other, any outbound,
    other inbound blocked."""
    group = SecurityGroup.objects.filter(project=project, is_default=True).first()
    if group is not None:
        return group
    group, created = SecurityGroup.objects.get_or_create(
        project=project, is_default=True, defaults={"owner": actor, "name": DEFAULT_NAME,
                                                    "description": "members talk to each other; outbound open"},
    )  # fmt: skip
    if created:
        for eth, anyaddr in ((EtherType.IPV4, "0.0.0.0/0"), (EtherType.IPV6, "::/0")):
            SecurityGroupRule.objects.create(
                group=group, direction=Direction.INGRESS, ethertype=eth, remote_group=group
            )
            SecurityGroupRule.objects.create(group=group, direction=Direction.EGRESS, ethertype=eth, cidr=anyaddr)
    return group


@transaction.atomic
def delete_group(actor: Actor, group_id: int, *, ip: str | None = None) -> None:
    """Remove a group no NIC, template NIC or other group's rule refers to."""
    group = lock(SecurityGroup, actor, group_id, what="security group")
    if group.nics.exists() or group.template_nics.exists():
        raise Conflict(f"security group {group.name} is still used by NICs", field="group")
    if group.referenced_by.exclude(group=group).exists():
        raise Conflict(f"rules of other groups refer to security group {group.name}", field="group")
    audit(actor, group, "delete", ip=ip)
    group.delete()


def _ports(protocol: str, port_min: int | None, port_max: int | None) -> tuple[int | None, int | None]:
    if protocol not in (Protocol.TCP, Protocol.UDP):
        if port_min is not None or port_max is not None:
            raise InvalidInput(f"ports apply to tcp and udp only, not {protocol}", field="port_min")
        return None, None
    if port_min is None and port_max is None:
        return None, None  # every port
    lo = int(port_min if port_min is not None else port_max)  # type: ignore[arg-type]
    hi = int(port_max if port_max is not None else port_min)  # type: ignore[arg-type]
    if not 1 <= lo <= 65535:
        raise InvalidInput(f"port_min must be between 1 and 65535, not {lo}", field="port_min")
    if not 1 <= hi <= 65535:
        raise InvalidInput(f"port_max must be between 1 and 65535, not {hi}", field="port_max")
    if lo > hi:
        raise InvalidInput(f"invalid port range: port_min {lo} is above port_max {hi}", field="port_max")
    return lo, hi


@transaction.atomic
def add_rule(
    actor: Actor,
    group_id: int,
    *,
    direction: str = Direction.INGRESS,
    ethertype: str = EtherType.IPV4,
    protocol: str = Protocol.ANY,
    port_min: int | None = None,
    port_max: int | None = None,
    cidr: str = "",
    remote_group: int | None = None,
    ip: str | None = None,
) -> SecurityGroupRule:
    """Allow traffic matching the rule; replies to allowed traffic are always let through (stateful)."""
    group = lock(SecurityGroup, actor, group_id, what="security group")
    if direction not in Direction.values:
        raise InvalidInput(f"direction must be one of {', '.join(Direction.values)}", field="direction")
    if ethertype not in EtherType.values:
        raise InvalidInput(f"ethertype must be one of {', '.join(EtherType.values)}", field="ethertype")
    if protocol not in Protocol.values:
        raise InvalidInput(f"protocol must be one of {', '.join(Protocol.values)}", field="protocol")
    port_min, port_max = _ports(protocol, port_min, port_max)
    remote = None
    if remote_group is not None:
        if cidr:
            raise InvalidInput("give either cidr or remote_group, not both", field="cidr")
        remote = SecurityGroup.objects.restrict(actor, "view").filter(pk=remote_group, project=group.project).first()
        if remote is None:
            raise NotFound("remote group not found in this project", field="remote_group")
    else:
        if not cidr:
            raise InvalidInput("a rule needs a cidr (0.0.0.0/0 for anyone) or a remote_group", field="cidr")
        net = parse_cidr(cidr, "cidr")
        want = 4 if ethertype == EtherType.IPV4 else 6
        if net.version != want:
            raise InvalidInput(f"cidr {cidr} is not an {ethertype} network", field="cidr")
        cidr = str(net)
    rule = SecurityGroupRule.objects.create(
        group=group, direction=direction, ethertype=ethertype, protocol=protocol, port_min=port_min,
        port_max=port_max, cidr=cidr, remote_group=remote,
    )  # fmt: skip
    audit(actor, group, "add_rule", ip=ip, rule=str(rule))
    _refresh_members(group)
    return rule


@transaction.atomic
def delete_rule(actor: Actor, rule_id: int, *, ip: str | None = None) -> None:
    """Remove a rule; running NICs of the group lose what it allowed."""
    rule = SecurityGroupRule.objects.restrict(actor, "manage").filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("rule not found")
    group = lock(SecurityGroup, actor, rule.group_id, what="security group")
    audit(actor, group, "delete_rule", ip=ip, rule=str(rule))
    rule.delete()
    _refresh_members(group)


def remote_addresses(rule: SecurityGroupRule) -> tuple[str, ...]:
    """The CIDRs a rule names: its own, or the addresses of the remote group's NICs."""
    if rule.remote_group_id is None:
        return (rule.cidr,)
    from ..models import Lease

    leases = Lease.objects.filter(nic__security_groups=rule.remote_group_id)
    if rule.ethertype == EtherType.IPV4:
        return tuple(sorted({f"{a}/32" for a in leases.values_list("address", flat=True)}))
    return tuple(sorted({f"{a}/128" for a in leases.values_list("ipv6", flat=True) if a}))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        return False
    return True
