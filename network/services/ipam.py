"""Address management: which addresses a network may hand out, and taking one under a lock.

Every allocation locks the network row first, so concurrent requests on one network queue
behind each other; the unique (network, address) constraint is the last line of defence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from portal.errors import Conflict, InvalidInput

from ..models import AddressRange, Lease, LeaseKind, Reservation, VirtualNetwork


def _ints(first: str, last: str) -> tuple[int, int]:
    return int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))


def excluded(network: VirtualNetwork) -> set[int]:
    """Addresses never leased: the subnet's network and broadcast address and the gateway."""
    out: set[int] = set()
    if network.cidr4:
        net = ipaddress.IPv4Network(network.cidr4)
        out |= {int(net.network_address), int(net.broadcast_address)}
    if network.gateway4:
        out.add(int(ipaddress.IPv4Address(network.gateway4)))
    return out


def reserved_spans(network: VirtualNetwork, but: Reservation | None = None) -> list[tuple[int, int]]:
    return [_ints(r.first, r.last) for r in network.reservations.all() if but is None or r.pk != but.pk]


def candidates(network: VirtualNetwork, reservation: Reservation | None = None) -> Iterator[int]:
    """Addresses a new lease may take, in order: a reservation's, or the ranges' minus reservations."""
    skip = excluded(network)
    if reservation is not None:
        lo, hi = _ints(reservation.first, reservation.last)
        yield from (a for a in range(lo, hi + 1) if a not in skip)
        return
    spans = reserved_spans(network)
    for rng in AddressRange.objects.filter(network=network).order_by("pk"):
        lo, hi = _ints(rng.first, rng.last)
        for a in range(lo, hi + 1):
            if a not in skip and not any(s <= a <= e for s, e in spans):
                yield a


def total(network: VirtualNetwork) -> int:
    """How many addresses the network can lease (ranges, minus excluded addresses)."""
    skip = excluded(network)
    n = 0
    for rng in network.ranges.all():
        lo, hi = _ints(rng.first, rng.last)
        n += hi - lo + 1 - sum(1 for a in skip if lo <= a <= hi)
    return n


def eui64(cidr6: str, mac: str) -> str:
    """The SLAAC address of ``mac`` in a /64 (what the guest's kernel configures itself)."""
    net = ipaddress.IPv6Network(cidr6)
    if net.prefixlen != 64:
        return ""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    iid = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return str(ipaddress.IPv6Address(int(net.network_address) | int.from_bytes(iid, "big")))


def allocate(
    network: VirtualNetwork,
    *,
    mac: str = "",
    fixed_ip: str | None = None,
    reservation: Reservation | None = None,
    kind: str = LeaseKind.NIC,
    field: str = "ip",
) -> Lease:
    """Take an address of ``network`` (locked by the caller): ``fixed_ip`` or the first free one.

    Raises InvalidInput for an address outside the network's ranges and Conflict for one in use
    or an exhausted range.
    """
    used = set(
        map(int, map(ipaddress.IPv4Address, Lease.objects.filter(network=network).values_list("address", flat=True)))
    )
    if fixed_ip:
        addr = int(ipaddress.IPv4Address(fixed_ip))
        if reservation is not None:
            lo, hi = _ints(reservation.first, reservation.last)
            ok = lo <= addr <= hi and addr not in excluded(network)
        else:
            ok = any(a == addr for a in _range_membership(network, addr))
        if not ok:
            where = f"reservation {reservation.name}" if reservation else f"the address ranges of {network.name}"
            raise InvalidInput(f"{fixed_ip} is not in {where} (or is reserved)", field=field)
        if addr in used:
            raise Conflict(f"{fixed_ip} is already leased on {network.name}", field=field)
    else:
        addr = next((a for a in candidates(network, reservation) if a not in used), -1)
        if addr < 0:
            where = f"reservation {reservation.name}" if reservation else f"network {network.name}"
            raise Conflict(f"no free address left in {where}: the address range is exhausted", field="network")
    address = str(ipaddress.IPv4Address(addr))
    ipv6 = eui64(network.cidr6, mac) if network.cidr6 and mac else ""
    return Lease.objects.create(
        network=network, address=address, ipv6=ipv6 or None, mac=mac, kind=kind, reservation=reservation
    )


def _range_membership(network: VirtualNetwork, addr: int) -> Iterator[int]:
    """``addr`` if the general pool (ranges minus reservations and excluded) contains it."""
    if addr in excluded(network):
        return
    if any(s <= addr <= e for s, e in reserved_spans(network)):
        return
    for rng in network.ranges.all():
        lo, hi = _ints(rng.first, rng.last)
        if lo <= addr <= hi:
            yield addr
            return


def lease_usage() -> list[tuple[str, str, int, int]]:
    """(network, project id, leases used, leases total) of every network, for /metrics."""
    from django.db.models import Count

    nets = VirtualNetwork.objects.annotate(used=Count("leases")).prefetch_related("ranges").order_by("pk")
    return [(f"{n.name}#{n.pk}", str(n.project_id), int(getattr(n, "used", 0)), total(n)) for n in nets]
