"""The agent's tasks. Each takes plain values, does host work, and reports to the control plane.

Reports are tasks named by string (``compute.step_done`` …) sent to the control queue: the agent
imports nothing of the control plane. In eager mode (tests running tasks in-process) a report
runs at once, like the task that sent it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import shared_task

from compute import agent
from compute.drivers.base import DriverError
from network import hostops as network_hostops
from specs.codec import decode, encode
from storage import hostops, volumeops

from . import work
from .celery import CONTROL_QUEUE

log = logging.getLogger(__name__)


def report(task: Any, name: str, args: list[Any]) -> None:
    app = task.app
    if app.conf.task_always_eager and name in app.tasks:
        app.tasks[name].apply(args)
    else:
        app.send_task(name, args=args, queue=CONTROL_QUEUE)


@shared_task(name="hostagent.run_step", bind=True, acks_late=True)
def run_step(self: Any, order: dict[str, Any]) -> str:
    """Carry out one step of a VM operation and report its result (``compute.step_done``). The
    report names the step: every step of an operation shares its sequence number."""
    step = decode(order)
    result = agent.execute(step)
    report(self, "compute.step_done", [step.vm_id, step.seq, encode(result), step.step])
    return result.error or "ok"


_watchers: dict[tuple[int, str, str], Callable[[str, str], None]] = {}


def _watcher(task: Any, host_id: int, driver: str, uri: str) -> Callable[[str, str], None]:
    """One libvirt lifecycle callback per host: a domain that stopped or crashed makes the agent
    list the host's domains at once (crash detection; the periodic listing is the safety net)."""
    key = (host_id, driver, uri)
    if key not in _watchers:
        app = task.app

        def on_event(domain: str, event: str) -> None:
            if event in ("stopped", "crashed"):
                app.send_task("hostagent.list_domains", args=[host_id, driver, uri], queue=f"host.{host_id}")

        _watchers[key] = on_event
    return _watchers[key]


#: the last counters read per host (epoch seconds, readings), sent along with the next ones
_last_stats: dict[tuple[str, str], tuple[float, list[Any]]] = {}


@shared_task(name="hostagent.probe", bind=True)
def probe(self: Any, host_id: int, driver: str, uri: str) -> str:
    """Probe the host; the report carries the previous counters too, so rates do not depend on
    which control-plane worker receives it."""
    info, stats, error = work.probe(driver, uri, _watcher(self, host_id, driver, uri))
    now = time.time()
    before_ts, before = _last_stats.get((driver, uri), (0.0, []))
    if info is not None:
        _last_stats[(driver, uri)] = (now, stats)
    previous = {s.name: [before_ts, encode(s)] for s in before}
    report(self, "compute.probe_done", [host_id, encode(info), encode(stats), error, now, previous])
    return error or "ok"


@shared_task(name="hostagent.list_domains", bind=True)
def list_domains(self: Any, host_id: int, driver: str, uri: str) -> str:
    domains, error = work.list_domains(driver, uri)
    report(self, "compute.domains_listed", [host_id, encode(domains), error])
    return error or "ok"


@shared_task(name="hostagent.remove_domains")
def remove_domains(driver: str, uri: str, names: list[str]) -> dict[str, str]:
    out = work.remove_domains(driver, uri, names)
    for name, outcome in out.items():
        if outcome != "ok":
            log.warning("could not remove domain %s on %s: %s", name, uri, outcome)
    return out


@shared_task(name="hostagent.run_volume_step", bind=True, acks_late=True)
def run_volume_step(self: Any, order: dict[str, Any]) -> str:
    """Carry out one volume operation and report it (``storage.volume_step_done``)."""
    vol = decode(order)
    error, size = volumeops.run(vol)
    report(self, "storage.volume_step_done", [vol.volume_id, vol.seq, error, size])
    return error or "ok"


@shared_task(name="hostagent.save_disk", bind=True, acks_late=True)
def save_disk(
    self: Any, disk_id: int, actor_id: int | None, name: str, datastore_id: int, src: str, fmt: str, dest: str
) -> str:
    """Flatten a VM disk into ``dest`` (qcow2) and report it (``storage.disk_saved``)."""
    error = ""
    try:
        # the source's format is pinned (an overlay's backing chain is followed by qemu-img)
        hostops.convert(src, fmt, dest, "qcow2")
    except DriverError as exc:
        error = str(exc)
    report(self, "storage.disk_saved", [disk_id, actor_id, name, datastore_id, dest, error])
    return error or "ok"


@shared_task(name="hostagent.plug_port")
def plug_port(plan: dict[str, Any]) -> str:
    """(Re)apply one NIC's port on this host: segment, filter, NAT."""
    network_hostops.plug_port(decode(plan))
    return "ok"


@shared_task(name="hostagent.hotplug_nic")
def hotplug_nic(driver: str, uri: str, domain: str, nic: dict[str, Any]) -> str:
    return network_hostops.hotplug(driver, uri, domain, decode(nic))


@shared_task(name="hostagent.hotunplug_nic")
def hotunplug_nic(driver: str, uri: str, domain: str, mac: str, tap: str, target: Any) -> str:
    return network_hostops.hotunplug(driver, uri, domain, mac, tap, decode(target))


@shared_task(name="hostagent.repair_network")
def repair_network(target: Any = None, plans: Any = None) -> dict[str, int]:
    """Make this host's network match the plans the control plane sent."""
    if target is None:
        return {"ports": 0, "removed": 0}  # the host has no network settings
    return network_hostops.repair(decode(target), decode(plans))
