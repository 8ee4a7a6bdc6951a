"""Host-side network provisioning, run by the agent (no ORM): bridges, VXLAN, nftables.

Each ``NicSpec`` of the domain carries its ``PortPlan`` (``network.vmnics``); NICs without one
(hosts with no network settings, such as the simulated hosts) are left alone.
"""

from __future__ import annotations

from specs import DomainSpec, NicSpec

from .drivers.base import NetworkDriver, PortPlan, get_driver


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
