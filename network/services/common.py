"""Helpers the network services share: access checks, parsing of addresses, audit."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.exceptions import ValidationError

from compute.models import name_validator
from portal import operations
from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.models import Project
from tenants.querysets import Actor, is_cloud_admin


def require_admin(actor: Actor, what: str) -> None:
    if actor is not None and not is_cloud_admin(actor):
        raise PermissionDenied(f"only cloud administrators may {what}")


def managed_project(actor: Actor, project: Project | int) -> Project:
    """The project, if ``actor`` may manage it; 404 otherwise."""
    pk = project.pk if isinstance(project, Project) else project
    found = Project.objects.restrict(actor, "manage").filter(pk=pk).first()
    if found is None:
        raise NotFound("project not found", field="project")
    return found


def lock(model: Any, actor: Actor, pk: int, action: str = "manage", what: str = "") -> Any:
    """The row, locked, if ``actor`` may ``action`` it; 404 otherwise (``portal.operations.lock``)."""
    return operations.lock(model, pk, actor=actor, action=action, what=what)


def check_name(name: str, field: str = "name") -> str:
    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.messages[0]}", field=field) from None
    return name


def parse_net4(value: str, field: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be an IPv4 subnet such as 10.0.0.0/24 ({exc})", field=field) from None
    if not 8 <= net.prefixlen <= 30:
        raise InvalidInput(f"{field} prefix must be between /8 and /30, not /{net.prefixlen}", field=field)
    return net


def parse_net6(value: str, field: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.IPv6Network(value.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be an IPv6 subnet such as fd00:1::/64 ({exc})", field=field) from None
    if not 48 <= net.prefixlen <= 64:
        raise InvalidInput(f"{field} prefix must be between /48 and /64, not /{net.prefixlen}", field=field)
    return net


def parse_ip4(value: Any, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{field} must be an IPv4 address, not {value!r}", field=field) from None


def parse_cidr(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"{field} must be a CIDR such as 10.0.0.0/8 or ::/0, not {value!r}", field=field) from None


def audit(actor: Actor, obj: Any, action: str, *, project: Any = None, ip: str | None = None, **detail: Any) -> None:
    """Audit row and event, as compute records its actions."""
    from monitoring.audit import record_action

    record_action(actor, obj, action, ip=ip, project=project, **detail)
