"""The network driver contract: typed plans in, host state out; no Django, no ORM.

The ORM side (``network.vmnics``) resolves a VM's NICs into ``PortPlan`` values (the network
segment, the addresses, the firewall rules with remote groups already turned into
addresses); the agent hands them to a driver bound to one host.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field


class NetworkDriverError(Exception):
    """A host-side network operation failed; the message is the kernel's (or nft's) own."""


@dataclass(frozen=True)
class HostTarget:
    """Where a driver acts: a host's network namespace ('' = the host's own) and underlay address."""

    netns: str = ""
    underlay_ip: str = ""
    public_interface: str = ""
    uplink: str = ""  # the trunk VLAN networks' 802.1Q sub-interfaces are made on


@dataclass(frozen=True)
class SegmentPlan:
    """One virtual network on a host: a bridge and its trunk device, either a VXLAN device joined
    to the other hosts (``isolation`` vxlan, ``vni`` the VNI) or an 802.1Q sub-interface of the
    host's uplink (``isolation`` vlan, ``vni`` the VLAN id)."""

    bridge: str
    vni: int
    mtu: int = 1450
    peers: tuple[str, ...] = ()  # underlay addresses of the other hosts (unicast head-end replication)
    gateway4: str = ""  # "10.0.0.1/24": set on the bridge when the host routes for the network (NAT)
    vxlan_port: int = 4789
    isolation: str = "vxlan"  # vxlan | vlan

    @property
    def vxlan(self) -> str:
        return f"nphx{self.vni}"[:15]

    @property
    def vlan(self) -> str:
        return f"nphv{self.vni}"[:15]

    @property
    def trunk(self) -> str:
        """The device that carries the segment off the host (enslaved to the bridge)."""
        return self.vlan if self.isolation == "vlan" else self.vxlan


@dataclass(frozen=True)
class LinkPlan:
    """One link a driver creates for a segment: name, kind, bridge it is enslaved to, attributes."""

    ifname: str
    kind: str  # bridge | vxlan | vlan
    master: str = ""
    link: str = ""  # the parent device (vlan: the uplink)
    vlan_id: int = 0
    vxlan_id: int = 0
    mtu: int = 1450


def segment_links(segment: SegmentPlan, target: HostTarget) -> tuple[LinkPlan, ...]:
    """The links ``segment`` needs on ``target``, in creation order (no host access).

    Raises NetworkDriverError for a VLAN segment on a host without an uplink.
    """
    bridge = LinkPlan(ifname=segment.bridge, kind="bridge", mtu=segment.mtu)
    if segment.isolation == "vlan":
        if not 1 <= segment.vni <= 4094:
            raise NetworkDriverError(f"802.1Q VLAN id {segment.vni} is outside 1-4094")
        if not target.uplink:
            raise NetworkDriverError(f"VLAN network {segment.bridge}: the host has no uplink interface for 802.1Q")
        sub = LinkPlan(ifname=segment.vlan, kind="vlan", master=segment.bridge, link=target.uplink,
                       vlan_id=segment.vni, mtu=segment.mtu)  # fmt: skip
        return (bridge, sub)
    if segment.isolation != "vxlan":
        raise NetworkDriverError(f"unknown isolation {segment.isolation!r}; known: vxlan, vlan")
    vx = LinkPlan(ifname=segment.vxlan, kind="vxlan", master=segment.bridge, vxlan_id=segment.vni, mtu=segment.mtu)
    return (bridge, vx)


@dataclass(frozen=True)
class RulePlan:
    """An allow rule of a port: traffic in ``direction`` matching family, protocol, ports, remotes."""

    direction: str  # ingress | egress
    family: str  # ipv4 | ipv6
    protocol: str = "any"  # any | tcp | udp | icmp
    port_min: int | None = None
    port_max: int | None = None
    remotes: tuple[str, ...] = ()  # CIDRs; empty means nobody (a remote group without members)


@dataclass(frozen=True)
class NatPlan:
    """1:1 NAT of a public address to a port's private IPv4."""

    public_ip: str
    private_ip: str


@dataclass(frozen=True)
class PortPlan:
    """A VM NIC on a host: its device, addresses, firewall and NAT."""

    segment: SegmentPlan
    target: HostTarget
    tap: str
    mac: str
    ipv4: str = ""
    ipv6: str = ""
    anti_spoofing: bool = True
    filtered: bool = True  # security groups apply (False: everything allowed)
    rules: tuple[RulePlan, ...] = ()
    nat: tuple[NatPlan, ...] = ()
    dhcp: bool = True  # let the guest ask for its address (DHCP from 0.0.0.0)
    driver: str = "linux"


@dataclass(frozen=True)
class SegmentState:
    """What a driver finds on a host for one bridge."""

    bridge: str
    vni: int = 0
    peers: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    filtered_ports: tuple[str, ...] = field(default_factory=tuple)


class NetworkDriver(abc.ABC):
    """One host's virtual networks. Every method is idempotent."""

    name: str = "abstract"

    def __init__(self, target: HostTarget) -> None:
        self.target = target

    @abc.abstractmethod
    def ensure_segment(self, segment: SegmentPlan) -> None:
        """Create or repair the bridge, the VXLAN device and its peer list."""

    @abc.abstractmethod
    def remove_segment(self, bridge: str) -> None:
        """Remove the bridge and its VXLAN device; a missing one is a no-op."""

    @abc.abstractmethod
    def plug_port(self, port: PortPlan) -> None:
        """Provision the port's segment, load its filter and NAT, enslave its device if present."""

    @abc.abstractmethod
    def unplug_port(self, tap: str) -> None:
        """Remove the port's filter and NAT (and release its device from the bridge)."""

    @abc.abstractmethod
    def segment_state(self, bridge: str) -> SegmentState | None:
        """The bridge as found on the host; None when it is absent."""

    @abc.abstractmethod
    def segments(self) -> list[str]:
        """Bridges this driver made on the host."""

    def prune(self, bridge: str) -> bool:
        """Remove the segment when no port uses it any more; True when removed."""
        state = self.segment_state(bridge)
        if state is None:
            return False
        if state.ports or state.filtered_ports:
            return False
        self.remove_segment(bridge)
        return True


_REGISTRY: dict[str, Callable[[HostTarget], NetworkDriver]] = {}


def register(name: str, factory: Callable[[HostTarget], NetworkDriver]) -> None:
    """Make a driver available by name (``VirtualNetwork.driver``)."""
    _REGISTRY[name] = factory


def get_driver(name: str, target: HostTarget) -> NetworkDriver:
    """A driver instance for one host; raises NetworkDriverError for an unknown name."""
    if name not in _REGISTRY:
        from . import linux  # noqa: F401 - registers itself

    try:
        return _REGISTRY[name](target)
    except KeyError:
        raise NetworkDriverError(f"unknown network driver {name!r}; known: {', '.join(_REGISTRY)}") from None


def driver_names() -> list[str]:
    from . import linux  # noqa: F401

    return sorted(_REGISTRY)
