"""Host-side network provisioning, run by the agent (no ORM): bridges, VXLAN, nftables.

Each ``NicSpec`` of the domain carries its ``PortPlan`` (``network.vmnics``); NICs without one
(hosts with no network settings, such as the simulated hosts) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from specs import DomainSpec, NicSpec

from .drivers.base import HostTarget, NetworkDriver, NetworkDriverError, PortPlan, get_driver

log = logging.getLogger(__name__)


def _planned(nics: tuple[NicSpec, ...]) -> list[PortPlan]:
    return [n.plan for n in nics if isinstance(n.plan, PortPlan)]


def _driver(plan: PortPlan) -> NetworkDriver:
    return get_driver(plan.driver, plan.target)


def plug_port(plan: PortPlan) -> None:
    """Provision one port (its network's segment first). Idempotent."""
    _driver(plan).plug_port(plan)


def unplug_port(plan: PortPlan) -> None:
    """Remove one port's filter; remove its segment when no other port uses it. Idempotent."""
    drv = _driver(plan)
    drv.unplug_port(plan.tap)
    drv.prune(plan.segment.bridge)


def plug_nics(uri: str, domain: DomainSpec) -> None:
    """Before boot (PROLOG): make sure each NIC's network exists on this host. Idempotent."""
    for plan in _planned(domain.nics):
        plug_port(plan)


def unplug_nics(uri: str, domain: DomainSpec) -> None:
    """After the domain is gone (EPILOG): clean up networks no NIC on this host uses. Idempotent."""
    for plan in _planned(domain.nics):
        unplug_port(plan)


def repair(target: HostTarget, plans: Iterable[PortPlan]) -> dict[str, int]:
    """Make a host match its plans: every port re-applied (segments, peers, filters); ports and
    segments that no plan needs any more removed. Idempotent."""
    plans = list(plans)
    removed = 0
    for name in {p.driver for p in plans} | {"linux"}:
        mine = [p for p in plans if p.driver == name]
        drv = get_driver(name, target)
        for plan in mine:
            try:
                drv.plug_port(plan)
            except NetworkDriverError as exc:
                log.warning("repair of port %s failed: %s", plan.tap, exc)
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


def hotplug(driver: str, uri: str, domain: str, nic: NicSpec) -> str:
    """Provision a NIC's port and attach the interface to the running domain."""
    from compute.drivers.registry import get_driver as compute_driver
    from specs import DriverError

    if isinstance(nic.plan, PortPlan):
        plug_port(nic.plan)
    try:
        compute_driver(driver, uri).attach_nic(domain, nic, live=True)
    except DriverError as exc:
        log.warning("hotplug of NIC %s into %s failed: %s", nic.mac, domain, exc)
        return f"failed: {exc}"
    return "ok"


def hotunplug(driver: str, uri: str, domain: str, mac: str, tap: str, target: HostTarget | None) -> str:
    """Detach the interface with ``mac`` from the running domain and drop its filter."""
    from compute.drivers.registry import get_driver as compute_driver
    from specs import DriverError

    try:
        compute_driver(driver, uri).detach_nic(domain, mac, live=True)
    except DriverError as exc:
        log.warning("hot-unplug of NIC %s of %s failed: %s", mac, domain, exc)
        return f"failed: {exc}"
    if target is not None:
        get_driver("linux", target).unplug_port(tap)
    return "ok"
