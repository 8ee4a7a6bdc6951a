"""Services for VNI pools, virtual networks, address ranges, holds and reservations."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants import quotas
from tenants.models import Project
from tenants.querysets import Actor, is_cloud_admin

from ..models import (
    AddressRange,
    Isolation,
    Lease,
    LeaseKind,
    Reservation,
    TemplateNic,
    VirtualNetwork,
    Visibility,
    VniPool,
)
from . import ipam
from .common import audit, check_name, lock, managed_project, parse_ip4, parse_net4, parse_net6, require_admin

MAX_VNI = 2**24 - 1
MAX_VLAN = 4094
MAX_ID = {Isolation.VXLAN: MAX_VNI, Isolation.VLAN: MAX_VLAN}
ID_NAME = {Isolation.VXLAN: "VNI", Isolation.VLAN: "VLAN id"}
POOL_NAME = {Isolation.VXLAN: "VNI pool", Isolation.VLAN: "VLAN pool"}


def _check_kind(kind: str, field: str) -> Isolation:
    if kind not in Isolation.values:
        raise InvalidInput(f"{field} must be one of {', '.join(Isolation.values)}, not {kind!r}", field=field)
    return Isolation(kind)


# --------------------------------------------------------------------------------------------
# VNI and VLAN pools (administrators)
# --------------------------------------------------------------------------------------------
@transaction.atomic
def create_vni_pool(actor: Actor, *, name: str, first: int, last: int, kind: str = Isolation.VXLAN) -> VniPool:
    """Add a range of segment ids (``kind`` vxlan: VNIs 1..2^24-1; vlan: 802.1Q ids 1..4094) for new networks."""
    require_admin(actor, "define VNI and VLAN pools")
    kind = _check_kind(kind, "kind")
    check_name(name)
    top, what = MAX_ID[kind], ID_NAME[kind]
    if not 1 <= first <= last <= top:
        raise InvalidInput(f"a {POOL_NAME[kind]} spans 1 ≤ first ≤ last ≤ {top} ({what}s)",
                           field="last" if first >= 1 else "first")  # fmt: skip
    for other in VniPool.objects.select_for_update().filter(kind=kind):
        if first <= other.last and other.first <= last:
            raise InvalidInput(f"overlaps {POOL_NAME[kind]} {other.name} ({other.first}-{other.last})", field="first")
    if VniPool.objects.filter(name=name).exists():
        raise Conflict(f"a pool named {name!r} exists already", field="name")
    pool = VniPool.objects.create(name=name, kind=kind, first=first, last=last)
    audit(actor, pool, "create", kind=kind, first=first, last=last)
    return pool


@transaction.atomic
def delete_vni_pool(actor: Actor, pool_id: int) -> None:
    """Remove a VNI pool no network uses."""
    require_admin(actor, "delete VNI pools")
    pool = lock(VniPool, actor, pool_id, what="VNI pool")
    if pool.networks.exists():
        raise Conflict(f"VNI pool {pool.name} still has {pool.networks.count()} networks", field="pool")
    audit(actor, pool, "delete")
    pool.delete()


def _take_vni(kind: str = Isolation.VXLAN) -> tuple[VniPool, int]:
    """The lowest free id of any pool of ``kind``; those pool rows are locked, so two requests never get one."""
    pools = list(VniPool.objects.select_for_update().filter(kind=kind).order_by("first"))
    field = "vni" if kind == Isolation.VXLAN else "isolation"
    if not pools:
        raise Conflict(
            f"no {POOL_NAME[Isolation(kind)]} is defined: a cloud administrator must define one", field=field
        )
    used = set(VirtualNetwork.objects.filter(isolation=kind).values_list("vni", flat=True))
    for pool in pools:
        for vni in range(pool.first, pool.last + 1):
            if vni not in used:
                return pool, vni
    raise Conflict(f"every {POOL_NAME[Isolation(kind)]} is exhausted", field=field)


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------
def _validate_subnets(
    project: Project,
    cidr4: str,
    gateway4: str | None,
    cidr6: str,
    gateway6: str | None,
    but: int | None = None,
) -> tuple[str, str | None, str, str | None]:
    net4 = parse_net4(cidr4, "cidr4") if cidr4 else None
    net6 = parse_net6(cidr6, "cidr6") if cidr6 else None
    if net4 is None and net6 is None:
        raise InvalidInput("a network needs an IPv4 subnet (cidr4), an IPv6 subnet (cidr6) or both", field="cidr4")
    gw4 = None
    if gateway4:
        if net4 is None:
            raise InvalidInput("gateway4 needs cidr4", field="gateway4")
        addr = parse_ip4(gateway4, "gateway4")
        if addr not in net4 or addr in (net4.network_address, net4.broadcast_address):
            raise InvalidInput(f"gateway4 {addr} is outside the usable addresses of {net4}", field="gateway4")
        gw4 = str(addr)
    gw6 = None
    if gateway6:
        if net6 is None:
            raise InvalidInput("gateway6 needs cidr6", field="gateway6")
        try:
            addr6 = ipaddress.IPv6Address(gateway6.strip())
        except ValueError:
            raise InvalidInput(f"gateway6 must be an IPv6 address, not {gateway6!r}", field="gateway6") from None
        if addr6 not in net6:
            raise InvalidInput(f"gateway6 {addr6} is outside {net6}", field="gateway6")
        gw6 = str(addr6)
    others = VirtualNetwork.objects.filter(project=project)
    if but is not None:
        others = others.exclude(pk=but)
    for other in others:
        if net4 and other.cidr4 and net4.overlaps(ipaddress.IPv4Network(other.cidr4)):
            raise InvalidInput(f"cidr4 {net4} overlaps network {other.name} ({other.cidr4}) of this project",
                               field="cidr4")  # fmt: skip
        if net6 and other.cidr6 and net6.overlaps(ipaddress.IPv6Network(other.cidr6)):
            raise InvalidInput(f"cidr6 {net6} overlaps network {other.name} ({other.cidr6}) of this project",
                               field="cidr6")  # fmt: skip
    return (str(net4) if net4 else ""), gw4, (str(net6) if net6 else ""), gw6


def _check_dns(dns: str) -> str:
    items = [d.strip() for d in dns.split(",") if d.strip()]
    for d in items:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise InvalidInput(
                f"dns must list IP addresses separated by commas; {d!r} is not one", field="dns"
            ) from None
    return ",".join(items)


@transaction.atomic
def create_network(
    actor: User,
    *,
    project: Project,
    name: str,
    cidr4: str = "",
    gateway4: str | None = None,
    cidr6: str = "",
    gateway6: str | None = None,
    dns: str = "",
    mtu: int = 1450,
    visibility: str = Visibility.PRIVATE,
    description: str = "",
    driver: str = "linux",
    isolation: str = Isolation.VXLAN,
    ip: str | None = None,
) -> VirtualNetwork:
    """A new isolated network with the next free VNI (or VLAN id); its whole IPv4 subnet is one address range."""
    from ..drivers.base import driver_names

    project = managed_project(actor, project)
    isolation = _check_kind(isolation, "isolation")
    check_name(name)
    if visibility not in Visibility.values:
        raise InvalidInput(f"visibility must be one of {', '.join(Visibility.values)}", field="visibility")
    if visibility != Visibility.PRIVATE and not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators make networks shared or public", field="visibility")
    if not 576 <= int(mtu) <= 9000:
        raise InvalidInput("mtu must be between 576 and 9000", field="mtu")
    if driver not in driver_names():
        raise InvalidInput(f"driver must be one of {', '.join(driver_names())}", field="driver")
    Project.objects.select_for_update().filter(pk=project.pk).get()  # serialise the overlap check per project
    cidr4, gw4, cidr6, gw6 = _validate_subnets(project, cidr4, gateway4, cidr6, gateway6)
    dns = _check_dns(dns)
    if VirtualNetwork.objects.filter(project=project, name=name).exists():
        raise Conflict(f"this project has a network named {name!r} already", field="name")
    quotas.consume(project, actor, networks=1)
    pool, vni = _take_vni(isolation)
    net = VirtualNetwork.objects.create(
        project=project, owner=actor, name=name, description=description, driver=driver, vni=vni, vni_pool=pool,
        isolation=isolation, bridge=f"nphb{vni}" if isolation == Isolation.VXLAN else f"nphbv{vni}", mtu=mtu, cidr4=cidr4, gateway4=gw4, cidr6=cidr6, gateway6=gw6, dns=dns,
        visibility=visibility,
    )  # fmt: skip
    if cidr4:
        hosts = ipaddress.IPv4Network(cidr4)
        AddressRange.objects.create(
            network=net, first=str(hosts.network_address + 1), last=str(hosts.broadcast_address - 1)
        )
    audit(actor, net, "create", ip=ip, isolation=isolation, vni=vni, cidr4=cidr4, cidr6=cidr6)
    return net


@transaction.atomic
def update_network(actor: Actor, network_id: int, *, ip: str | None = None, **changes: Any) -> VirtualNetwork:
    """Change a network's name, description, DNS servers or visibility."""
    net: VirtualNetwork = lock(VirtualNetwork, actor, network_id, what="network")
    allowed = {"name", "description", "dns", "visibility"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a network", field=sorted(unknown)[0])
    if "name" in changes:
        check_name(changes["name"])
        if VirtualNetwork.objects.filter(project=net.project, name=changes["name"]).exclude(pk=net.pk).exists():
            raise Conflict(f"this project has a network named {changes['name']!r} already", field="name")
    if "dns" in changes:
        changes["dns"] = _check_dns(changes["dns"])
    if "visibility" in changes:
        if changes["visibility"] not in Visibility.values:
            raise InvalidInput(f"visibility must be one of {', '.join(Visibility.values)}", field="visibility")
        if changes["visibility"] != Visibility.PRIVATE and not is_cloud_admin(actor):
            raise PermissionDenied("only cloud administrators make networks shared or public", field="visibility")
    for k, v in changes.items():
        setattr(net, k, v)
    net.save()
    audit(actor, net, "update", ip=ip, **{k: str(v) for k, v in changes.items()})
    return net


@transaction.atomic
def delete_network(actor: Actor, network_id: int, *, ip: str | None = None) -> None:
    """Remove a network that no NIC, template, hold or reservation uses."""
    net = lock(VirtualNetwork, actor, network_id, what="network")
    leases = net.leases.count()
    if leases:
        raise Conflict(f"network {net.name} still has {leases} leases; detach its NICs first", field="network")
    if TemplateNic.objects.filter(network=net).exists():
        raise Conflict(f"templates still give NICs on network {net.name}", field="network")
    if net.nics.exists():
        raise Conflict(f"VMs still have NICs on network {net.name}", field="network")
    if net.reservations.exists():
        raise Conflict(f"network {net.name} still has reservations", field="network")
    quotas.release(net.project, net.owner, networks=1)
    audit(actor, net, "delete", ip=ip, vni=net.vni)
    net.delete()


# --------------------------------------------------------------------------------------------
# address ranges, holds, reservations
# --------------------------------------------------------------------------------------------
def _span(network: VirtualNetwork, first: str, last: str) -> tuple[int, int]:
    if not network.cidr4:
        raise InvalidInput(f"network {network.name} has no IPv4 subnet", field="first")
    subnet = ipaddress.IPv4Network(network.cidr4)
    a, b = parse_ip4(first, "first"), parse_ip4(last, "last")
    for addr, fld in ((a, "first"), (b, "last")):
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            raise InvalidInput(f"{fld} {addr} is outside the usable addresses of {subnet}", field=fld)
    if int(a) > int(b):
        raise InvalidInput(f"first {a} comes after last {b}", field="last")
    return int(a), int(b)


@transaction.atomic
def add_range(actor: Actor, network_id: int, *, first: str, last: str, ip: str | None = None) -> AddressRange:
    """Add an IPv4 range to a network; ranges of one network never overlap."""
    net = lock(VirtualNetwork, actor, network_id, what="network")
    lo, hi = _span(net, first, last)
    for r in net.ranges.all():
        rl, rh = int(ipaddress.IPv4Address(r.first)), int(ipaddress.IPv4Address(r.last))
        if lo <= rh and rl <= hi:
            raise InvalidInput(f"overlaps the address range {r.first}-{r.last}", field="first")
    rng = AddressRange.objects.create(
        network=net, first=str(ipaddress.IPv4Address(lo)), last=str(ipaddress.IPv4Address(hi))
    )
    audit(actor, net, "add_range", ip=ip, first=rng.first, last=rng.last)
    return rng


def _leases_within(net: VirtualNetwork, lo: int, hi: int) -> int:
    return sum(1 for a in net.leases.values_list("address", flat=True) if lo <= int(ipaddress.IPv4Address(a)) <= hi)


@transaction.atomic
def delete_range(actor: Actor, range_id: int, *, ip: str | None = None) -> None:
    """Remove an address range with no lease in it."""
    rng = AddressRange.objects.restrict(actor, "manage").filter(pk=range_id).first()
    if rng is None:
        raise NotFound("address range not found")
    net = lock(VirtualNetwork, actor, rng.network_id, what="network")
    lo, hi = int(ipaddress.IPv4Address(rng.first)), int(ipaddress.IPv4Address(rng.last))
    n = _leases_within(net, lo, hi)
    if n:
        raise Conflict(f"the range {rng.first}-{rng.last} still has {n} leases", field="range")
    audit(actor, net, "delete_range", ip=ip, first=rng.first, last=rng.last)
    rng.delete()


@transaction.atomic
def hold_address(actor: Actor, network_id: int, *, address: str, ip: str | None = None) -> Lease:
    """Keep ``address`` from being leased (e.g. a router outside Nephele)."""
    net = lock(VirtualNetwork, actor, network_id, what="network")
    addr = parse_ip4(address, "address")
    try:
        with transaction.atomic():
            lease = ipam.allocate(net, fixed_ip=str(addr), kind=LeaseKind.HOLD, field="address")
    except IntegrityError:
        raise Conflict(f"{addr} is already leased", field="address") from None
    quotas.consume(net.project, None, ip_leases=1)
    audit(actor, net, "hold", ip=ip, address=str(addr))
    return lease


@transaction.atomic
def release_hold(actor: Actor, lease_id: int, *, ip: str | None = None) -> None:
    """Give a held address back to the pool."""
    lease = Lease.objects.restrict(actor, "manage").filter(pk=lease_id, kind=LeaseKind.HOLD).first()
    if lease is None:
        raise NotFound("held address not found")
    net = lock(VirtualNetwork, actor, lease.network_id, what="network")
    quotas.release(net.project, None, ip_leases=1)
    audit(actor, net, "release_hold", ip=ip, address=lease.address)
    lease.delete()


@transaction.atomic
def create_reservation(
    actor: User, network_id: int, *, project: Project, name: str, first: str, last: str, ip: str | None = None
) -> Reservation:
    """Set the sub-range first..last of a network aside for ``project``'s NICs."""
    project = managed_project(actor, project)
    visible = VirtualNetwork.objects.restrict(actor, "view").filter(pk=network_id).exists()
    if not visible:
        raise NotFound("network not found", field="network")
    net = VirtualNetwork.objects.select_for_update().get(pk=network_id)
    check_name(name)
    lo, hi = _span(net, first, last)
    if not any(
        int(ipaddress.IPv4Address(r.first)) <= lo and hi <= int(ipaddress.IPv4Address(r.last)) for r in net.ranges.all()
    ):
        raise InvalidInput(f"{first}-{last} is not inside one address range of {net.name}", field="first")
    for s, e in ipam.reserved_spans(net):
        if lo <= e and s <= hi:
            raise InvalidInput(f"overlaps a reservation ({ipaddress.IPv4Address(s)}-{ipaddress.IPv4Address(e)})",
                               field="first")  # fmt: skip
    n = _leases_within(net, lo, hi)
    if n:
        raise Conflict(f"{n} addresses of {first}-{last} are leased already", field="first")
    res = Reservation.objects.create(
        network=net, project=project, owner=actor, name=name,
        first=str(ipaddress.IPv4Address(lo)), last=str(ipaddress.IPv4Address(hi)),
    )  # fmt: skip
    audit(actor, res, "create", ip=ip, network=net.pk, first=res.first, last=res.last)
    return res


@transaction.atomic
def delete_reservation(actor: Actor, reservation_id: int, *, ip: str | None = None) -> None:
    """Return a reservation's addresses to the network; refused while NICs use them."""
    res = lock(Reservation, actor, reservation_id, what="reservation")
    VirtualNetwork.objects.select_for_update().filter(pk=res.network_id).get()
    n = Lease.objects.filter(reservation=res).count()
    if n:
        raise Conflict(f"reservation {res.name} still has {n} leases", field="reservation")
    audit(actor, res, "delete", ip=ip)
    res.delete()
