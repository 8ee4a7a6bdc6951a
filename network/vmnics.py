"""The network manager's part of a VM's domain: its NICs.

``nic_specs(vm)`` is called by ``compute.services.vms.domain_spec`` (ORM side): each NIC's
``NicSpec`` carries a ``PortPlan`` (segment, addresses, resolved firewall rules, NAT) when its
host has network settings (``HostNetwork``); ``network.hostops`` plugs and unplugs them on the
host (agent side, no ORM). ``on_vms_created`` / ``on_vm_done`` are compute's hooks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from specs import NicSpec

from .drivers.base import HostTarget, NatPlan, PortPlan, RulePlan, SegmentPlan


def on_vms_created(actor: Any, vms: list[Any], template: Any) -> None:
    """Give VMs just made from ``template`` its NICs (inside ``create_vms``'s transaction)."""
    from .services.nics import on_vms_created as create

    create(actor, vms, template)


def on_nics_requested(actor: Any, vms: list[Any], networks: list[int], security_groups: list[int]) -> None:
    """NICs asked for at create time (a VM made without a template, or more than its template's):
    one per network, in ``security_groups`` (else the project's default group)."""
    from .services.nics import create_nic

    for vm in vms:
        for network in networks:
            create_nic(actor, vm, network=network, security_groups=list(security_groups) or None)


def nic_choices(actor: Any, project: Any) -> dict[str, list[tuple[int, str]]]:
    """The networks ``actor`` may put a NIC on and ``project``'s security groups, by name."""
    from .models import SecurityGroup, VirtualNetwork

    nets = VirtualNetwork.objects.restrict(actor, "view").order_by("name", "pk").values_list("pk", "name")[:200]
    groups = (
        SecurityGroup.objects.restrict(actor, "view").filter(project=project).order_by("name", "pk")
        .values_list("pk", "name")[:200]
    )  # fmt: skip
    return {"networks": list(nets), "security_groups": list(groups)}


def on_vm_done(vm: Any) -> None:
    """The VM reached DONE: release its NICs' leases, public IPs and quota (same transaction)."""
    from .services.nics import on_vm_done as done

    done(vm)


def vm_addresses(vm_ids: list[int]) -> dict[int, list[str]]:
    """The leased addresses (IPv4, then IPv6) of each VM's NICs, in NIC order: one query."""
    from .models import Lease

    out: dict[int, list[str]] = {}
    rows = (
        Lease.objects.filter(nic__vm_id__in=list(vm_ids))
        .order_by("nic__vm_id", "nic__index")
        .values_list("nic__vm_id", "address", "ipv6")
    )
    for vm_id, v4, v6 in rows:
        out.setdefault(vm_id, []).extend(a for a in (v4, v6) if a)
    return out


def _segment(nic: Any, host: Any) -> SegmentPlan:
    from .models import HostNetwork

    net = nic.network
    me = getattr(host, "network", None) if host is not None else None
    peers: tuple[str, ...] = ()
    if me is not None and net.isolation == "vxlan":
        peers = tuple(
            sorted(
                HostNetwork.objects.exclude(pk=me.pk)
                .exclude(underlay_ip=me.underlay_ip)
                .values_list("underlay_ip", flat=True)
            )
        )
    gw = ""
    if net.gateway4 and net.cidr4:
        gw = f"{net.gateway4}/{ipaddress.IPv4Network(net.cidr4).prefixlen}"
    return SegmentPlan(bridge=net.bridge, vni=net.vni, mtu=net.mtu, peers=peers, gateway4=gw, isolation=net.isolation)


def port_plan(nic: Any, host: Any = None) -> PortPlan | None:
    """What the host must do for ``nic``; None when the VM's host has no network settings."""
    from .models import HostNetwork, PublicIP
    from .services.secgroups import remote_addresses

    host = host if host is not None else nic.vm.host
    if host is None:
        return None
    hn = HostNetwork.objects.filter(host=host).first()
    if hn is None:
        return None
    rules: list[RulePlan] = []
    groups = list(nic.security_groups.prefetch_related("rules"))
    for group in groups:
        for r in group.rules.all():
            rules.append(
                RulePlan(
                    direction=r.direction,
                    family=r.ethertype,
                    protocol=r.protocol,
                    port_min=r.port_min,
                    port_max=r.port_max,
                    remotes=remote_addresses(r),
                )  # fmt: skip
            )
    nat = tuple(NatPlan(public_ip=p.address, private_ip=nic.ipv4) for p in PublicIP.objects.filter(nic=nic))
    return PortPlan(
        segment=_segment(nic, host),
        target=HostTarget(
            netns=hn.netns, underlay_ip=hn.underlay_ip, public_interface=hn.public_interface, uplink=hn.uplink
        ),
        tap=nic.tap,
        mac=nic.mac,
        ipv4=nic.ipv4,
        ipv6=nic.ipv6,
        anti_spoofing=nic.anti_spoofing,
        filtered=bool(groups),
        rules=tuple(rules),
        nat=nat,
        driver=nic.network.driver,
    )


def nic_spec(nic: Any, host: Any = None) -> NicSpec:
    """The domain's <interface> for ``nic``, with its host plan."""
    return NicSpec(
        mac=nic.mac,
        bridge=nic.network.bridge,
        tap=nic.tap,
        mtu=nic.network.mtu,
        average_kbps=nic.average_kbps,
        peak_kbps=nic.peak_kbps,
        burst_kb=nic.burst_kb,
        plan=port_plan(nic, host),
    )


def _vm_nics(vm: Any) -> list[Any]:
    """The VM's NICs in order, with their network and lease: prefetched by ``prefetch`` when the
    specs of many VMs are built together, else one query."""
    from .models import VMNic

    prefetched = getattr(vm, "spec_nics", None)
    if prefetched is not None:
        return list(prefetched)
    return list(VMNic.objects.filter(vm=vm).select_related("network", "lease").order_by("index"))


def prefetch(vms: list[Any]) -> None:
    """``compute.hooks.specs_prefetch``: the NICs of all ``vms`` in one query."""
    from django.db.models import Prefetch, prefetch_related_objects

    from .models import VMNic

    rows = VMNic.objects.select_related("network", "lease").order_by("index")
    prefetch_related_objects(vms, Prefetch("nics", queryset=rows, to_attr="spec_nics"))


def nic_specs(vm: Any) -> list[NicSpec]:
    """The NICs of ``vm``, in order."""
    return [nic_spec(n, vm.host) for n in _vm_nics(vm)]


def network_config(vm: Any) -> dict[str, Any]:
    """cloud-init network configuration (version 2) for ``vm``'s NICs, matched by MAC; {} when it has none."""
    ethernets: dict[str, Any] = {}
    for nic in _vm_nics(vm):
        net = nic.network
        entry: dict[str, Any] = {"match": {"macaddress": nic.mac}, "set-name": nic.name}
        addresses = []
        if nic.ipv4 and net.cidr4:
            addresses.append(f"{nic.ipv4}/{ipaddress.IPv4Network(net.cidr4).prefixlen}")
        if nic.ipv6 and net.cidr6:
            addresses.append(f"{nic.ipv6}/{ipaddress.IPv6Network(net.cidr6).prefixlen}")
        if addresses:
            entry["addresses"] = addresses
        if net.gateway4:
            entry["gateway4"] = net.gateway4
        if net.gateway6:
            entry["gateway6"] = net.gateway6
        if net.mtu:
            entry["mtu"] = net.mtu
        if net.dns_list:
            entry["nameservers"] = {"addresses": net.dns_list}
        ethernets[nic.name] = entry
    return {"version": 2, "ethernets": ethernets} if ethernets else {}
