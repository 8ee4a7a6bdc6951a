"""Celery tasks of the network manager: re-apply a port, NIC hotplug, the drift check.

Host work runs on the host's queue (``host.<pk>``), by its agent (``hostagent.plug_port``,
``hotplug_nic``, ``hotunplug_nic``, ``repair_network``): the control plane builds the plans from
the ORM here and sends them as plain values. The ``network.*`` tasks below do the same work
in this process (tests, single-machine tools).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import shared_task

from compute.states import ON_HOST
from portal import periodic
from portal.celery import RETRY_TRANSIENT, app
from specs.codec import decode, encode

from . import hostops
from .drivers.base import HostTarget

if TYPE_CHECKING:
    from .models import HostNetwork

log = logging.getLogger(__name__)


@shared_task(name="network.refresh_port", acks_late=True, **RETRY_TRANSIENT)
def refresh_port(nic_id: int) -> str:
    """Re-apply one NIC's filter and NAT on its host, in this process (what the agent does with
    ``hostagent.plug_port``)."""
    rendered = render_port(nic_id)
    if rendered is None:
        return "gone"
    hostops.plug_port(decode(rendered[0]))
    return "ok"


def render_port(nic_id: int) -> tuple[Any] | None:
    """The outbox's renderer of ``hostagent.plug_port``: the NIC's port plan, if it has a host."""
    from .models import VMNic
    from .vmnics import port_plan

    nic = VMNic.objects.select_related("vm__host", "network", "lease").filter(pk=nic_id).first()
    if nic is None or nic.vm.host is None or nic.vm.state not in ON_HOST:
        return None
    plan = port_plan(nic)
    return None if plan is None else (encode(plan),)


def render_hotplug(nic_id: int) -> tuple[Any, ...] | None:
    """The outbox's renderer of ``hostagent.hotplug_nic``: the NIC's spec and its VM's domain."""
    from .models import VMNic
    from .vmnics import nic_spec

    nic = VMNic.objects.select_related("vm__host", "network", "lease").filter(pk=nic_id).first()
    if nic is None or nic.vm.host is None:
        return None
    host = nic.vm.host
    return (host.driver, host.uri, nic.vm.domain_name, encode(nic_spec(nic)))


def unplug_order(vm: Any, mac: str, tap: str) -> tuple[Any, ...]:
    """The plain arguments of ``hostagent.hotunplug_nic`` (built in the transaction: the NIC row is gone after)."""
    hn = getattr(vm.host, "network", None)
    target = None if hn is None else hostops_target(hn)
    return (vm.host.driver, vm.host.uri, vm.domain_name, mac, tap, encode(target))


@shared_task(name="network.check_hosts")
def check_hosts() -> int:
    """Periodic: queue a drift check on every host with network settings."""
    from .models import HostNetwork

    def send(hn: HostNetwork) -> None:
        app.send_task("hostagent.repair_network", args=list(repair_order(hn.host_id) or ()), queue=hn.host.queue,
                      expires=120)  # fmt: skip

    return periodic.each(
        "check_hosts", list(HostNetwork.objects.select_related("host")), send, key=lambda h: h.host_id
    ).done


@shared_task(name="network.repair_host", acks_late=True, **RETRY_TRANSIENT)
def repair_host(host_id: int) -> dict[str, int]:
    """The drift check and repair of one host, in this process (the agent's ``hostagent.repair_network``)."""
    return repair(host_id)


def repair_order(host_id: int) -> tuple[Any, Any] | None:
    """What the host's network must look like: its target and every placed NIC's port plan."""
    from .models import HostNetwork, VMNic
    from .vmnics import port_plan

    hn = HostNetwork.objects.select_related("host").filter(host_id=host_id).first()
    if hn is None:
        return None
    nics = VMNic.objects.filter(vm__host_id=host_id, vm__state__in=ON_HOST).select_related(
        "vm__host", "network", "lease"
    )
    plans = [p for p in (port_plan(n, hn.host) for n in nics) if p is not None]
    return encode(hostops_target(hn)), encode(plans)


def repair(host_id: int) -> dict[str, int]:
    """The drift check and repair for one host (also called directly by tests)."""
    order = repair_order(host_id)
    if order is None:
        return {"ports": 0, "removed": 0}
    return hostops.repair(decode(order[0]), decode(order[1]))


def hostops_target(hn: HostNetwork) -> HostTarget:
    return HostTarget(
        netns=hn.netns, underlay_ip=hn.underlay_ip, public_interface=hn.public_interface, uplink=hn.uplink
    )
