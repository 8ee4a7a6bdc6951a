"""Browser pages of the network manager: networks (usage bars, ranges, holds, reservations),
security groups with a rule editor, public IPs, the project topology, the VM's NICs, and the
administrators' pools and host settings.

Reads start from the access gate; every change posts to ``network_action`` which calls one
service; a refusal comes back as a message on the page the form was on (nothing changed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from compute.models import Host, VirtualMachine, VMTemplate
from compute.states import VMState
from portal.api import client_ip
from portal.errors import NotFound, ServiceError
from portal.tables import Column, Table
from tenants import quotas
from tenants.models import Project
from tenants.querysets import is_cloud_admin

from . import models as m
from .services import hosts, ipam, networks, nics, publicips, secgroups
from .topology import svg, topology


def _manage(request: HttpRequest) -> bool:
    project = getattr(request, "project", None)
    return project is not None and Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists()


def _scope(request: HttpRequest, qs: Any) -> Any:
    """Objects of the active project (all visible ones without one)."""
    project = getattr(request, "project", None)
    return qs.filter(project=project) if project is not None else qs


NETWORK_COLUMNS = [
    Column("name", "Name", "name"), Column("subnets", "Subnets", "cidr4", "c-subnets", optional=True),
    Column("segment", "Segment", "isolation", "c-segment", optional=True),
    Column("visibility", "Visibility", "visibility", "c-visibility", optional=True),
    Column("leases", "Leases", None, "c-leases", optional=True),
]  # fmt: skip


@login_required
def network_list(request: HttpRequest) -> HttpResponse:
    """Networks of the active project and the shared ones, with lease usage."""
    visible = m.VirtualNetwork.objects.restrict(request.user, "view")
    table = Table(request, visible.select_related("project").prefetch_related("ranges"), NETWORK_COLUMNS,
                  default_sort="name", total=visible.count(), name="networks")  # fmt: skip
    nets = table.rows
    # leases counted for this page's networks only
    used = dict(
        m.Lease.objects.filter(network__in=[n.pk for n in nets])
        .order_by()
        .values_list("network")
        .annotate(n=Count("pk"))
    )
    for n in nets:
        n.used = used.get(n.pk, 0)  # type: ignore[attr-defined]
        n.total = ipam.total(n)  # type: ignore[attr-defined]
    project = getattr(request, "project", None)
    lines = (
        [q for q in quotas.usage(project) if q.resource in ("networks", "ip_leases", "public_ips")] if project else []
    )
    return render(request, "network/network_list.html", {"networks": nets, "table": table, "can_manage": _manage(request),
                                                          "quota_lines": lines, "cloud_admin": is_cloud_admin(request.user),
                                                          "visibilities": m.Visibility.choices, "isolations": m.Isolation.choices})  # fmt: skip


@login_required
def network_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One network: its address ranges, leases and holds, reservations."""
    net = m.VirtualNetwork.objects.restrict(request.user, "view").select_related("project").filter(pk=pk).first()
    if net is None:
        raise Http404("network not found")
    can = m.VirtualNetwork.objects.restrict(request.user, "manage").filter(pk=pk).exists()
    leases = m.Lease.objects.filter(network=net).select_related("nic__vm").order_by("pk")
    if not can:
        leases = leases.filter(nic__vm__project__in=Project.objects.restrict(request.user, "view"))
    ctx = {
        "net": net,
        "can_manage": can,
        "can_reserve": _manage(request),
        "ranges": net.ranges.all(),
        "leases": leases[:500],
        "used": net.leases.count(),
        "total": ipam.total(net),
        "reservations": m.Reservation.objects.filter(network=net).select_related("project"),
    }
    return render(request, "network/network_detail.html", ctx)


@login_required
def security_groups(request: HttpRequest) -> HttpResponse:
    """Security groups of the active project with their rules and the rule editor."""
    groups = _scope(request, m.SecurityGroup.objects.restrict(request.user, "view")).prefetch_related(
        "rules__remote_group"
    )
    ctx = {"groups": groups, "can_manage": _manage(request), "directions": m.Direction.choices,
           "ethertypes": m.EtherType.choices, "protocols": m.Protocol.choices}  # fmt: skip
    return render(request, "network/security_groups.html", ctx)


@login_required
def public_ips(request: HttpRequest) -> HttpResponse:
    """The active project's public IPs: allocate, associate with a NIC, disassociate, release."""
    pips = _scope(request, m.PublicIP.objects.restrict(request.user, "view")).select_related(
        "pool", "nic__vm", "nic__lease"
    )
    vnics = _scope_nics(request, m.VMNic.objects.restrict(request.user, "manage").select_related("vm", "lease"))
    ctx = {"pips": pips, "nics": vnics.exclude(vm__state=VMState.DONE).filter(lease__isnull=False),
           "pools": m.PublicIPPool.objects.all(), "can_manage": _manage(request)}  # fmt: skip
    return render(request, "network/public_ips.html", ctx)


def _scope_nics(request: HttpRequest, qs: Any) -> Any:
    project = getattr(request, "project", None)
    return qs.filter(vm__project=project) if project is not None else qs


@login_required
def topology_page(request: HttpRequest) -> HttpResponse:
    """The active project's networks, VMs and public IPs drawn as an SVG (server-side)."""
    projects = Project.objects.restrict(request.user, "view")
    project = getattr(request, "project", None)
    if project is not None:
        projects = projects.filter(pk=project.pk)
    data = topology(request.user, projects)
    return render(request, "network/topology.html", {"data": data, "svg": mark_safe(svg(data))})  # noqa: S308 - escaped inside


@login_required
def network_admin(request: HttpRequest) -> HttpResponse:
    """VNI pools, public IP pools and the hosts' network settings (cloud administrators)."""
    if not is_cloud_admin(request.user):
        raise Http404("page not found")
    ctx = {
        "vni_pools": m.VniPool.objects.annotate(n=Count("networks")),
        "ip_pools": m.PublicIPPool.objects.annotate(n=Count("addresses")),
        "host_networks": m.HostNetwork.objects.select_related("host"),
        "hosts": Host.objects.order_by("name"),
    }
    return render(request, "network/admin.html", ctx)


def vm_nics_context(user: Any, vm: VirtualMachine) -> dict[str, Any]:
    """What ``network/_partials/_vm_nics.html`` needs (included by the VM page)."""
    vm_nics = m.VMNic.objects.filter(vm=vm).select_related("network", "lease").prefetch_related("security_groups")
    can = getattr(vm, "can_manage", False)
    return {
        "vm": vm,
        "vm_nics": vm_nics,
        "can_manage_nics": can and vm.state != VMState.DONE,
        "attach_networks": m.VirtualNetwork.objects.restrict(user, "view") if can else [],
        "attach_groups": m.SecurityGroup.objects.filter(project=vm.project) if can else [],
    }


# --------------------------------------------------------------------------------------------
# changes: one POST endpoint, one service per "what"
# --------------------------------------------------------------------------------------------
def _i(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _project(request: HttpRequest) -> Project:
    project = getattr(request, "project", None)
    if project is None:
        raise NotFound("choose a project first", field="project")
    return project


def _ints(values: list[str]) -> list[int]:
    return [v for v in (_i(x) for x in values) if v is not None]


Handler = Callable[[HttpRequest, Any, str | None], str]


def _net_create(r: HttpRequest, p: Any, ip: str | None) -> str:
    net = networks.create_network(
        r.user, project=_project(r), name=p.get("name", ""), cidr4=p.get("cidr4", ""),
        gateway4=p.get("gateway4") or None, cidr6=p.get("cidr6", ""), gateway6=p.get("gateway6") or None,
        dns=p.get("dns", ""), mtu=_i(p.get("mtu")) or 1450, visibility=p.get("visibility") or "private",
        isolation=p.get("isolation") or "vxlan", ip=ip,
    )  # fmt: skip
    what = "VLAN" if net.isolation == "vlan" else "VNI"
    return f"Network {net.name} created ({what} {net.vni})."


def _rule_add(r: HttpRequest, p: Any, ip: str | None) -> str:
    rule = secgroups.add_rule(
        r.user, _i(p.get("group")) or 0, direction=p.get("direction", "ingress"), ethertype=p.get("ethertype", "ipv4"),
        protocol=p.get("protocol", "any"), port_min=_i(p.get("port_min")) if p.get("port_min") else None,
        port_max=_i(p.get("port_max")) if p.get("port_max") else None, cidr=p.get("cidr", "").strip(),
        remote_group=_i(p.get("remote_group")) if p.get("remote_group") else None, ip=ip,
    )  # fmt: skip
    return f"Rule added: {rule}."


def _nic_attach(r: HttpRequest, p: Any, ip: str | None) -> str:
    nic = nics.attach_nic(r.user, _i(p.get("vm")) or 0, network=_i(p.get("network")) or 0,
                          fixed_ip=p.get("fixed_ip") or None, security_groups=_ints(p.getlist("groups")) or None,
                          average_kbps=_i(p.get("average_kbps")) or 0, ip=ip)  # fmt: skip
    return f"NIC {nic.name} attached ({nic.ipv4 or 'no IPv4'})."


HANDLERS: dict[str, Handler] = {
    "network-create": _net_create,
    "network-delete": lambda r, p, ip: (
        networks.delete_network(r.user, _i(p.get("id")) or 0, ip=ip),
        "Network deleted.",
    )[1],
    "range-add": lambda r, p, ip: (
        str(
            networks.add_range(
                r.user, _i(p.get("network")) or 0, first=p.get("first", ""), last=p.get("last", ""), ip=ip
            )
        )
        + " added."
    ),  # fmt: skip
    "range-delete": lambda r, p, ip: (networks.delete_range(r.user, _i(p.get("id")) or 0, ip=ip), "Range removed.")[1],
    "hold": lambda r, p, ip: (
        f"{networks.hold_address(r.user, _i(p.get('network')) or 0, address=p.get('address', ''), ip=ip)} held."
    ),
    "hold-release": lambda r, p, ip: (networks.release_hold(r.user, _i(p.get("id")) or 0, ip=ip), "Address released.")[
        1
    ],
    "reservation-create": lambda r, p, ip: (
        f"Reservation {networks.create_reservation(r.user, _i(p.get('network')) or 0, project=_project(r), name=p.get('name', ''), first=p.get('first', ''), last=p.get('last', ''), ip=ip).name} created."
    ),  # noqa: E501
    "reservation-delete": lambda r, p, ip: (
        networks.delete_reservation(r.user, _i(p.get("id")) or 0, ip=ip),
        "Reservation removed.",
    )[1],  # noqa: E501
    "group-create": lambda r, p, ip: (
        f"Security group {secgroups.create_group(r.user, project=_project(r), name=p.get('name', ''), description=p.get('description', ''), ip=ip).name} created."
    ),  # noqa: E501
    "group-delete": lambda r, p, ip: (
        secgroups.delete_group(r.user, _i(p.get("id")) or 0, ip=ip),
        "Security group deleted.",
    )[1],  # noqa: E501
    "rule-add": _rule_add,
    "rule-delete": lambda r, p, ip: (secgroups.delete_rule(r.user, _i(p.get("id")) or 0, ip=ip), "Rule removed.")[1],
    "pip-allocate": lambda r, p, ip: (
        f"Public IP {publicips.allocate(r.user, project=_project(r), pool=_i(p.get('pool')), ip=ip).address} allocated."
    ),  # noqa: E501
    "pip-associate": lambda r, p, ip: (
        f"{publicips.associate(r.user, _i(p.get('id')) or 0, nic_id=_i(p.get('nic')) or 0, ip=ip).address} associated."
    ),  # noqa: E501
    "pip-disassociate": lambda r, p, ip: (
        f"{publicips.disassociate(r.user, _i(p.get('id')) or 0, ip=ip).address} disassociated."
    ),  # noqa: E501
    "pip-release": lambda r, p, ip: (publicips.release(r.user, _i(p.get("id")) or 0, ip=ip), "Public IP released.")[1],
    "nic-attach": _nic_attach,
    "nic-detach": lambda r, p, ip: (nics.detach_nic(r.user, _i(p.get("id")) or 0, ip=ip), "NIC detached.")[1],
    "nic-groups": lambda r, p, ip: (
        nics.set_nic_groups(r.user, _i(p.get("id")) or 0, security_groups=_ints(p.getlist("groups")), ip=ip),
        "Security groups set.",
    )[1],  # noqa: E501
    "vni-pool-create": lambda r, p, ip: (
        f"Pool {networks.create_vni_pool(r.user, name=p.get('name', ''), kind=p.get('kind') or 'vxlan', first=_i(p.get('first')) or 0, last=_i(p.get('last')) or 0).name} created."
    ),  # noqa: E501
    "vni-pool-delete": lambda r, p, ip: (networks.delete_vni_pool(r.user, _i(p.get("id")) or 0), "Pool deleted.")[1],
    "ip-pool-create": lambda r, p, ip: (
        f"Public IP pool {publicips.create_pool(r.user, name=p.get('name', ''), cidr=p.get('cidr', ''), first=p.get('first', ''), last=p.get('last', '')).name} created."
    ),  # noqa: E501
    "ip-pool-delete": lambda r, p, ip: (publicips.delete_pool(r.user, _i(p.get("id")) or 0), "Public IP pool deleted.")[
        1
    ],
    "host-network": lambda r, p, ip: (
        f"Host network of {hosts.set_host_network(r.user, host=_i(p.get('host')) or 0, underlay_ip=p.get('underlay_ip', ''), netns=p.get('netns', ''), public_interface=p.get('public_interface', ''), uplink=p.get('uplink', '')).host.name} set."
    ),  # noqa: E501
    "template-nic-add": lambda r, p, ip: (
        nics.add_template_nic(
            r.user, _i(p.get("template")) or 0, network=_i(p.get("network")) or 0, fixed_ip=p.get("fixed_ip") or None
        ),
        "Template NIC added.",
    )[1],  # noqa: E501
}


@login_required
@require_POST
def network_action(request: HttpRequest) -> HttpResponse:
    """Carry out one change; the message says what happened or why not (field and limit)."""
    what = request.POST.get("what", "")
    handler = HANDLERS.get(what)
    try:
        if handler is None:
            raise NotFound(f"unknown action {what!r}", field="what")
        messages.success(request, handler(request, request.POST, client_ip(request)))
    except ServiceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return redirect(referer)
    return redirect("ui-network-list")


__all__ = ["VMTemplate", "network_action", "network_admin", "network_detail", "network_list", "public_ips",
           "security_groups", "topology_page", "vm_nics_context"]  # fmt: skip
