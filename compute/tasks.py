"""Celery tasks: load by primary key, call a driver, finish through a service (CONVENTIONS §7).

Host work runs on the host's own queue (``host.<pk>``), consumed by the agent that keeps the
host's libvirt connection open. Scheduling and fan-out run on the default queue.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import hostagent.tasks  # noqa: F401  (registers the agent's tasks: in-process workers run them too)
from hostagent import work
from portal import outbox, periodic
from portal.celery import RETRY_TRANSIENT, app
from specs import DomainStats, HostInfo
from specs.codec import decode, encode

from . import services
from .models import Host, VirtualMachine
from .states import HostState
from .states import VMState as S

log = logging.getLogger(__name__)
#: probe interval of a host without a cluster (a cluster sets its own ``monitor_interval_s``)
DEFAULT_PROBE_INTERVAL_S = 10


def agent_name(agent: str) -> str:
    return f"agent@{agent}"


def enqueue_step(vm: VirtualMachine) -> None:
    """Queue the VM's current step on its host's queue after commit (through the outbox): the
    plain step order itself travels in the message, so the agent needs no database."""
    host = vm.host
    if host is None:
        return
    outbox.send("hostagent.run_step", (vm.pk, vm.operation_seq), queue=host.queue)


def render_step(vm_id: int, seq: int) -> tuple[dict[str, Any]] | None:
    """The outbox's renderer of ``hostagent.run_step``: the step order, from the committed VM."""
    order = services.step_order(vm_id, seq)
    return None if order is None else (encode(order),)


def render_steps(rows: list[list[Any]]) -> list[tuple[dict[str, Any]] | None]:
    """The same for a commit's rows at once (one query per kind of row, not per VM)."""
    orders = services.steps.step_orders([(int(vm_id), int(seq)) for vm_id, seq in rows])
    return [None if order is None else (encode(order),) for order in orders]


@shared_task(name="compute.step_done", acks_late=True, **RETRY_TRANSIENT)
def step_done(vm_id: int, seq: int, result: dict[str, Any], step: str = "") -> str:
    """An agent's report of one step. Safe twice or late: a stale ``seq``, or a step the VM has
    moved past (a redelivered PROLOG report while it BOOTs), is refused."""
    vm = services.complete_step(vm_id, seq, decode(result), step=step)
    return "stale" if vm is None else vm.state


@shared_task(name="compute.schedule_vm", acks_late=True, **RETRY_TRANSIENT)
def schedule_vm(vm_id: int) -> str:
    vm = services.place_vm(vm_id)
    return vm.state


@shared_task(name="compute.schedule_pending")
def schedule_pending() -> dict[str, object]:
    """The periodic sweep: try every PENDING VM again (new capacity may have appeared).

    The VMs are ranked in one pass over one snapshot of the hosts (``rank_batch``), then placed
    in chunks of ``SWEEP_CHUNK`` per commit, each VM inside its own error boundary (a savepoint):
    a VM that makes placement fail (poison input) is skipped and reported, the others are still
    placed. One sweep runs at a time (``periodic.exclusive``): two sweeps claiming hosts in
    different orders could otherwise wait on each other."""
    from .scheduler.service import rank_batch

    with periodic.exclusive("schedule_pending") as mine:
        if not mine:
            return {"sweep": "schedule_pending", "skipped": "another sweep is running"}
        pending = list(
            VirtualMachine.objects.filter(state=S.PENDING, operation="").select_related("cluster").order_by("pk")
        )
        placed = 0
        try:
            plan = rank_batch(pending)
        except Exception:  # a VM that makes ranking fail: rank each on its own, inside its boundary
            log.exception("schedule_pending: batch ranking failed; ranking VM by VM")
            plan = {}

        hosts: dict[int, Host] = {}

        def place(pk: int) -> None:
            nonlocal placed
            vm = services.place_pending(pk, plan.get(pk), hosts)
            placed += vm is not None and vm.state != S.PENDING

        swept = periodic.each("schedule_pending", [vm.pk for vm in pending], place, chunk=SWEEP_CHUNK)
        return {**swept.as_result(), "placed": placed}


#: PENDING VMs placed per commit by the sweep (host claims are held until the chunk commits)
SWEEP_CHUNK = 50


@shared_task(name="compute.sweep_stuck")
def sweep_stuck() -> dict[str, object]:
    """Periodic: re-drive (or, after a few tries, fail) VMs whose step made no progress."""
    return periodic.each("sweep_stuck", services.sweeper.stuck_vms(), services.sweeper.sweep_vm).as_result()


@shared_task(name="compute.attach_host_queue", acks_late=True, **RETRY_TRANSIENT)
def attach_host_queue(host_id: int) -> None:
    """Tell the host's agent to consume its queue, then probe it."""
    host = Host.objects.get(pk=host_id)
    app.control.add_consumer(host.queue, destination=[agent_name(host.agent)], reply=False, **queue_declaration())
    send_probe(host)


def queue_declaration() -> dict[str, Any]:
    """How an agent declares a host queue it is told to consume: as the control plane declares
    the queues it publishes to (on RabbitMQ a quorum queue on a topic exchange; a consumer that
    declared it otherwise would be refused by the broker)."""
    conf = app.conf
    if conf.task_create_missing_queue_type != "quorum":
        return {}
    return {
        "exchange_type": conf.task_create_missing_queue_exchange_type or "direct",
        "options": {"queue_arguments": {"x-queue-type": "quorum"}},
    }


def send_probe(host: Host, expires: float | None = None) -> None:
    """Ask the host's agent for a probe (answered by ``compute.probe_done``)."""
    app.send_task("hostagent.probe", args=[host.pk, host.driver, host.uri], queue=host.queue, expires=expires)


def probe_interval(host: Host) -> float:
    """Seconds between probes of ``host`` (its cluster's monitoring interval)."""
    return float(host.cluster.monitor_interval_s if host.cluster else DEFAULT_PROBE_INTERVAL_S)


@shared_task(name="compute.probe_hosts")
def probe_hosts() -> dict[str, object]:
    """Fan a probe out to every host's agent at its interval. Each interval without an answer is
    a missed probe: ``NEPHELE_HOST_FAILED_PROBES`` missed or failed probes make the host ERROR, so
    a dead host is detected after K intervals (plus at most one beat period)."""
    now = timezone.now()

    def probe(host: Host) -> None:
        interval = probe_interval(host)
        elapsed = (now - host.last_probe_at).total_seconds() if host.last_probe_at else 0.0
        if host.state == HostState.MONITORED and elapsed >= interval:
            services.hosts.record_silence(host.pk, int(elapsed // interval), interval)
        if host.last_probe_at and elapsed < interval - 1:
            return  # the cluster's monitoring interval has not elapsed
        send_probe(host, expires=interval)

    hosts = Host.objects.exclude(state__in=[HostState.OFFLINE, HostState.DISABLED]).select_related("cluster")
    return periodic.each("probe_hosts", list(hosts), probe, key=lambda h: h.pk).as_result()


@shared_task(name="compute.probe_host", acks_late=True, **RETRY_TRANSIENT)
def probe_host(host_id: int) -> str:
    """Probe a host from this process (what the agent does on ``hostagent.probe``), and record it."""
    host = Host.objects.filter(pk=host_id).values("driver", "uri").first()
    if host is None:
        return "gone"
    info, stats, error = work.probe(host["driver"], host["uri"])
    return record_probe_result(host_id, info, stats, error)


@shared_task(name="compute.probe_done", acks_late=True, **RETRY_TRANSIENT)
def probe_done(host_id: int, info: Any, stats: Any, error: str, ts: float | None = None, previous: Any = None) -> str:
    """An agent's probe report: capacity, load and the domains' counters (with the previous ones
    it read, for rates), or the error."""
    before = {name: (float(t), decode(s)) for name, (t, s) in (previous or {}).items()}
    return record_probe_result(
        host_id, decode(info), decode(stats), error, ts, before if previous is not None else None
    )


def record_probe_result(
    host_id: int,
    info: HostInfo | None,
    stats: list[DomainStats],
    error: str,
    ts: float | None = None,
    previous: dict[str, tuple[float, DomainStats]] | None = None,
) -> str:
    if info is None:
        services.record_probe(host_id, None, error)
        return f"error: {error}"
    host_obj = services.record_probe(host_id, info)
    if host_obj is not None:
        _collect(host_obj, info, stats, ts, previous)
    return "ok"


def _collect(
    host: Host,
    info: HostInfo,
    stats: list[DomainStats],
    ts: float | None = None,
    previous: dict[str, tuple[float, DomainStats]] | None = None,
) -> None:
    """Store the host's and its VMs' samples, and push the VMs' latest figures to browsers."""
    from monitoring import collect, store
    from portal.events import ADMIN_GROUP, project_group, publish

    vms = dict(VirtualMachine.objects.filter(host=host).exclude(state=S.DONE).values_list("pk", "project_id"))
    names = {f"{settings.NEPHELE_DOMAIN_PREFIX}-{pk}": pk for pk in vms}
    rows = collect.host_rows(host.pk, info, host.alloc_vcpu, host.alloc_memory_mb)
    now = datetime.fromtimestamp(ts, UTC) if ts else None
    rows += collect.vm_rows(host.uri, stats, names, now=now, previous=previous)
    with transaction.atomic():
        store.ingest(rows)
        latest: dict[int, dict[str, float]] = {}
        for at, kind, oid, metric, value in rows:
            if kind == 2:
                latest.setdefault(oid, {"ts": at.timestamp()})[str(metric)] = round(value, 2)
        host_fig = {str(m): round(v, 2) for _t, k, _o, m, v in rows if k == 1}
        publish(
            [ADMIN_GROUP],
            {"type": "host.metrics", "host": host.pk, "figures": {"ts": rows[0][0].timestamp(), **host_fig}},
        )
        for pk, figures in latest.items():
            publish([project_group(vms[pk])], {"type": "vm.metrics", "vm": pk, "project": vms[pk], "figures": figures})


@shared_task(name="compute.reconcile_hosts")
def reconcile_hosts() -> dict[str, object]:
    def send(host: Host) -> None:
        app.send_task("hostagent.list_domains", args=[host.pk, host.driver, host.uri], queue=host.queue, expires=60)

    hosts = list(Host.objects.filter(state=HostState.MONITORED))
    return periodic.each("reconcile_hosts", hosts, send, key=lambda h: h.pk).as_result()


@shared_task(name="compute.reconcile_host", acks_late=True, **RETRY_TRANSIENT)
def reconcile_host(host_id: int) -> dict[str, list[str]]:
    """Reconcile a host from this process (what ``hostagent.list_domains`` + ``domains_listed`` do)."""
    host = Host.objects.filter(pk=host_id).values("driver", "uri").first()
    if host is None:
        return {}
    domains, error = work.list_domains(host["driver"], host["uri"])
    if domains is None:
        return {"error": [error]}
    report = services.reconcile(host_id, domains)
    work.remove_domains(host["driver"], host["uri"], report.get("stale_domains", []))
    return report


@shared_task(name="compute.domains_listed", acks_late=True, **RETRY_TRANSIENT)
def domains_listed(host_id: int, domains: Any, error: str) -> dict[str, list[str]]:
    """An agent listed its host's domains: repair drift; stale domains go back to it for removal."""
    if error:
        return {"error": [error]}
    report = services.reconcile(host_id, decode(domains))
    host = Host.objects.filter(pk=host_id).first()
    if host is not None and report.get("stale_domains"):
        app.send_task(
            "hostagent.remove_domains", args=[host.driver, host.uri, report["stale_domains"]], queue=host.queue
        )
    return report


@shared_task(name="compute.host_power", acks_late=True, **RETRY_TRANSIENT)
def host_power(host_id: int, seq: int) -> str:
    """Carry out power action ``seq`` through the host's BMC and record the answer. A redelivered
    or superseded message finds the action done (or another one queued) and does nothing; a
    message redelivered mid-call repeats an idempotent on / off (the drivers ask first)."""
    order = services.power.power_order(host_id, seq)
    if order is None:
        return "stale"
    state, error = services.power.run_power(order)
    services.power.power_done(host_id, seq, state, error)
    return f"error: {error}" if error else str(state)


@shared_task(name="compute.host_failover", acks_late=True, **RETRY_TRANSIENT)
def host_failover(host_id: int, confirmed: bool = False) -> str:
    """A host went ERROR: its idle VMs show UNKNOWN; its HA VMs are restarted elsewhere once it
    is known not to run them any more — fenced, or confirmed down by an administrator
    (``confirmed``). Fencing powers the host off through its BMC when it has one (power driver
    redfish or ipmi; the BMC must then report it off), otherwise runs ``NEPHELE_FENCE_COMMAND``
    (which must succeed). Without either, nothing moves unless ``NEPHELE_HA_WITHOUT_FENCE =
    "restart"``: a host that is only unreachable may still run its VMs, and restarting them
    elsewhere would run them twice. When the host comes back, reconciliation removes the old
    domains of VMs that moved."""
    import subprocess

    from monitoring.events import emit

    host = Host.objects.filter(pk=host_id).first()
    if host is None or host.state != HostState.ERROR:
        return "not in ERROR"
    residents = VirtualMachine.objects.filter(host=host, state__in=services.hosts.LOST_WITH_HOST, operation="")
    periodic.each(
        "host_lost_vms",
        list(residents.values_list("pk", flat=True)),
        lambda pk: services.hosts.host_lost_vm(pk, host_id),
    )
    vms = list(
        VirtualMachine.objects.filter(
            host=host, ha=True, state__in=[S.RUNNING, S.UNKNOWN, S.BOOT, S.PROLOG]
        ).values_list("pk", flat=True)
    )
    if not vms:
        return "no HA VMs"
    cmd = None if services.power.has_bmc(host) else services.hosts.fence_command(host)
    if services.power.has_bmc(host) and not confirmed:
        ok, detail = services.power.fence_host(host_id)
        with transaction.atomic():
            emit("host.fenced" if ok else "host.fence_failed", host, via=host.power_driver, output=detail)
        if not ok:
            return "fencing failed: nothing moved"
    elif cmd is not None and not confirmed:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
            ok, detail = result.returncode == 0, (result.stdout + result.stderr)[-500:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, str(exc)
        with transaction.atomic():
            emit("host.fenced" if ok else "host.fence_failed", host, command=" ".join(cmd), output=detail)
        if not ok:
            return "fencing failed: nothing moved"
    elif cmd is None and not confirmed and settings.NEPHELE_HA_WITHOUT_FENCE != "restart":
        with transaction.atomic():
            emit("host.failover_awaits_confirmation", host, vms=len(vms))
        return "no fence configured: waiting for an administrator to confirm the host is down"
    moved = sum(services.hosts.evacuate_vm(pk, host_id) for pk in vms)
    return f"{moved} VM(s) rescheduled"


def cleanup_domain(host: Host, domain: str) -> None:
    """Best-effort removal of a domain after ``recover --delete``, by the host's agent."""
    app.send_task("hostagent.remove_domains", args=[host.driver, host.uri, [domain]], queue=host.queue)
