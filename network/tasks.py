"""Celery tasks of the network manager: re-apply a port, NIC hotplug, the drift check.

Host work runs on the host's queue (``host.<pk>``) where its agent lives; the tasks load by
primary key, build the plan on the ORM side and hand plain values to the driver.
"""

from __future__ import annotations

import logging

from celery import shared_task

from compute.states import ON_HOST
from portal import periodic

from . import hostops
from .drivers.base import HostTarget, NetworkDriverError, PortPlan, get_driver

log = logging.getLogger(__name__)


@shared_task(name="network.refresh_port")
def refresh_port(nic_id: int) -> str:
    """Re-apply one NIC's filter and NAT on its host (after a rule or public IP changed)."""
    from .models import VMNic
    from .vmnics import port_plan

    nic = VMNic.objects.select_related("vm__host", "network", "lease").filter(pk=nic_id).first()
    if nic is None or nic.vm.host is None or nic.vm.state not in ON_HOST:
        return "gone"
    plan = port_plan(nic)
    if plan is None:
        return "no host network"
    hostops.plug_port(plan)
    return "ok"


@shared_task(name="network.hotplug_nic")
def hotplug_nic(nic_id: int, attach: bool = True) -> str:
    """Provision the NIC's port and attach the interface to the running domain."""
    from compute.drivers.registry import get_driver as compute_driver
    from specs import DriverError

    from .models import VMNic
    from .vmnics import nic_spec

    nic = VMNic.objects.select_related("vm__host", "network", "lease").filter(pk=nic_id).first()
    if nic is None or nic.vm.host is None:
        return "gone"
    spec = nic_spec(nic)
    if isinstance(spec.plan, PortPlan):
        hostops.plug_port(spec.plan)
    host = nic.vm.host
    try:
        compute_driver(host.driver, host.uri).attach_nic(nic.vm.domain_name, spec, live=True)
    except DriverError as exc:
        log.warning("hotplug of NIC %s failed: %s", nic_id, exc)
        return f"failed: {exc}"
    return "ok"


@shared_task(name="network.hotunplug_nic")
def hotunplug_nic(vm_id: int, mac: str, tap: str) -> str:
    """Detach the interface with ``mac`` from the running domain and drop its filter."""
    from compute.drivers.registry import get_driver as compute_driver
    from compute.models import VirtualMachine
    from specs import DriverError

    vm = VirtualMachine.objects.select_related("host").filter(pk=vm_id).first()
    if vm is None or vm.host is None:
        return "gone"
    try:
        compute_driver(vm.host.driver, vm.host.uri).detach_nic(vm.domain_name, mac, live=True)
    except DriverError as exc:
        log.warning("hot-unplug of NIC %s of VM %s failed: %s", mac, vm_id, exc)
        return f"failed: {exc}"
    hn = getattr(vm.host, "network", None)
    if hn is not None:
        get_driver("linux", HostTarget(netns=hn.netns, underlay_ip=hn.underlay_ip)).unplug_port(tap)
    return "ok"


@shared_task(name="network.check_hosts")
def check_hosts() -> int:
    """Periodic: queue a drift check on every host with network settings."""
    from .models import HostNetwork

    def send(hn: HostNetwork) -> None:
        repair_host.apply_async((hn.host_id,), queue=hn.host.queue, expires=120)

    return periodic.each(
        "check_hosts", list(HostNetwork.objects.select_related("host")), send, key=lambda h: h.host_id
    ).done


@shared_task(name="network.repair_host")
def repair_host(host_id: int) -> dict[str, int]:
    """Make the host match the database: every placed NIC's port re-applied (segments, peers,
    filters), segments and filters no NIC on the host needs any more removed."""
    return repair(host_id)


def repair(host_id: int) -> dict[str, int]:
    """The drift check and repair for one host (also called directly by tests)."""
    from .models import HostNetwork, VMNic
    from .vmnics import port_plan

    hn = HostNetwork.objects.select_related("host").filter(host_id=host_id).first()
    if hn is None:
        return {"ports": 0, "removed": 0}
    nics = VMNic.objects.filter(vm__host_id=host_id, vm__state__in=ON_HOST).select_related(
        "vm__host", "network", "lease"
    )
    plans = [p for p in (port_plan(n, hn.host) for n in nics) if p is not None]
    drivers = {p.driver for p in plans} | {"linux"}
    removed = 0
    for name in drivers:
        mine = [p for p in plans if p.driver == name]
        drv = get_driver(name, hostops_target(hn))
        for plan in mine:
            try:
                drv.plug_port(plan)
            except NetworkDriverError as exc:
                log.warning("repair of port %s on host %s failed: %s", plan.tap, host_id, exc)
        wanted_taps = {p.tap for p in mine}
        wanted_bridges = {p.segment.bridge for p in mine}
        for tap in getattr(drv, "port_tables", list)():
            if tap not in wanted_taps:
                drv.unplug_port(tap)
                removed += 1
        for bridge in drv.segments():
            if bridge not in wanted_bridges:
                drv.remove_segment(bridge)
                removed += 1
    return {"ports": len(plans), "removed": removed}


def hostops_target(hn: object) -> HostTarget:
    return HostTarget(
        netns=hn.netns, underlay_ip=hn.underlay_ip, public_interface=hn.public_interface, uplink=hn.uplink
    )  # type: ignore[attr-defined]
