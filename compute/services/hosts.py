"""Host registration, administrative state, probes and reconciliation: the writers of Host rows."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from monitoring.audit import record_action
from monitoring.events import emit
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from portal.events import publish_host
from specs import DomainInfo, HostInfo
from tenants.querysets import Actor, is_cloud_admin

from ..drivers.registry import names as driver_names
from ..models import Cluster, Host, VirtualMachine, host_name_validator
from ..states import ADMIN_HOST_STATES, HostState
from ..states import VMState as S
from .observation import observe_domain

log = logging.getLogger(__name__)
URI_SCHEMES = ("qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "test")


def _require_admin(actor: Actor) -> None:
    if actor is not None and not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators manage hosts")


@transaction.atomic
def register_host(
    actor: Actor,
    *,
    name: str,
    uri: str,
    driver: str = "libvirt",
    hypervisor: str = "qemu",
    cluster: Cluster | None = None,
    labels: dict[str, str] | None = None,
    priority: int = 0,
    agent: str = "local",
    ip: str | None = None,
) -> Host:
    """Add a host; its agent starts consuming the host's queue and a first probe runs at once."""
    from .. import tasks

    _require_admin(actor)
    try:
        host_name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
    if Host.objects.filter(name=name).exists():
        raise Conflict(f"a host named {name!r} exists already", field="name")
    scheme = uri.split(":", 1)[0]
    if "://" not in uri or scheme not in URI_SCHEMES:
        raise InvalidInput(f"uri must be a libvirt URI with scheme {', '.join(URI_SCHEMES)}", field="uri")
    if driver not in driver_names():
        raise InvalidInput(f"driver must be one of {', '.join(driver_names())}", field="driver")
    labels = labels or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidInput("labels must map strings to strings", field="labels")
    host = Host.objects.create(
        name=name,
        uri=uri,
        driver=driver,
        hypervisor=hypervisor,
        cluster=cluster,
        labels=labels,
        priority=priority,
        agent=agent,
    )
    record_action(actor, host, "register", ip=ip, uri=uri)
    publish_host(host.pk)
    transaction.on_commit(lambda: tasks.attach_host_queue(host.pk))
    return host


HOST_ADMIN_STATES = {"enable": HostState.INIT, "disable": HostState.DISABLED, "offline": HostState.OFFLINE}
#: what an administrator may do to a host: its administrative states, and confirming that a host
#: in ERROR is really down (powered off, fenced by hand), which restarts its HA VMs elsewhere.
HOST_ACTIONS = (*HOST_ADMIN_STATES, "confirm_down")


@transaction.atomic
def set_host_state(actor: Actor, host_id: int, action: str, *, ip: str | None = None) -> Host:
    """enable / disable / offline. Offline is refused while VMs still live on the host."""
    from .. import tasks

    _require_admin(actor)
    if action not in HOST_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(HOST_ACTIONS)}", field="action")
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None:
        raise NotFound("host not found")
    if action == "confirm_down":
        return _confirm_down(actor, host, ip)
    if action == "offline":
        resident = VirtualMachine.objects.filter(host=host).exclude(state=S.DONE).count()
        if resident:
            raise Conflict(f"host {host.name} still has {resident} VM(s); migrate or terminate them first")
    before = host.state
    host.state = HOST_ADMIN_STATES[action]
    emit(f"host.state.{host.state}", host, actor=actor, from_state=before)
    host.state_message = f"{action}d by {getattr(actor, 'username', 'system')}"
    host.save(update_fields=["state", "state_message"])
    record_action(actor, host, action, ip=ip)
    publish_host(host.pk)
    if action == "enable":
        transaction.on_commit(lambda: tasks.send_probe(host))
    return host


def _confirm_down(actor: Actor, host: Host, ip: str | None) -> Host:
    """The operator vouches that a host in ERROR no longer runs its VMs: its HA VMs move now."""
    from .. import tasks

    if host.state != HostState.ERROR:
        raise Conflict(f"host {host.name} is {host.state}; only a host in ERROR can be confirmed down", field="action")
    host.state_message = f"confirmed down by {getattr(actor, 'username', 'system')}"
    host.save(update_fields=["state_message"])
    record_action(actor, host, "confirm_down", ip=ip)
    emit("host.confirmed_down", host, actor=actor)
    publish_host(host.pk)
    transaction.on_commit(lambda: tasks.host_failover.delay(host.pk, confirmed=True))
    return host


@transaction.atomic
def delete_host(actor: Actor, host_id: int, *, ip: str | None = None) -> None:
    _require_admin(actor)
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None:
        raise NotFound("host not found")
    if VirtualMachine.objects.filter(host=host).exists():
        raise Conflict(f"host {host.name} still has VMs")
    record_action(actor, host, "delete", ip=ip)
    host.placements.all().delete()
    host.delete()


@transaction.atomic
def record_probe(host_id: int, info: HostInfo | None, error: str = "") -> Host | None:
    """A probe's result: capacity and load, or a failure. ``NEPHELE_HOST_FAILED_PROBES`` failures
    in a row make the host ERROR, which starts the failover of its HA VMs."""
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None:
        return None
    host.last_probe_at = timezone.now()
    fields = ["last_probe_at", "failed_probes"]
    if info is not None:
        host.failed_probes = 0
        host.total_vcpu = info.vcpu
        host.total_memory_mb = info.memory_mb
        host.total_disk_gb = info.disk_gb
        host.free_memory_mb = info.free_memory_mb
        host.cpu_load = info.cpu_load
        fields += ["total_vcpu", "total_memory_mb", "total_disk_gb", "free_memory_mb", "cpu_load"]
    _count_failures(host, fields, info is None, host.failed_probes + 1 if info is None else 0, error)
    return host


@transaction.atomic
def record_silence(host_id: int, missed: int, interval_s: float) -> Host | None:
    """The host's agent has not answered for ``missed`` probe intervals: each counts as a failed
    probe (so detection takes ``NEPHELE_HOST_FAILED_PROBES`` intervals, whatever answers before)."""
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None or host.state != HostState.MONITORED or missed <= host.failed_probes:
        return host
    _count_failures(host, ["failed_probes"], True, missed, f"no probe answer for {missed} × {interval_s:.0f} s")
    return host


def _count_failures(host: Host, fields: list[str], failed: bool, count: int, error: str) -> None:
    """Save the probe figures in ``fields`` and move the host to the state they imply."""
    from .. import tasks

    before = host.state
    host.failed_probes = count
    if host.state in ADMIN_HOST_STATES:
        pass
    elif failed:
        limit = settings.NEPHELE_HOST_FAILED_PROBES
        if host.failed_probes >= limit:
            host.state = HostState.ERROR
        host.state_message = f"{error[:900]} ({host.failed_probes} failed probe(s) in a row, ERROR at {limit})"
        fields += ["state", "state_message"]
    else:
        host.state, host.state_message = HostState.MONITORED, ""
        fields += ["state", "state_message"]
    host.save(update_fields=fields)
    if host.state != before:
        emit(f"host.state.{host.state}", host, from_state=before, message=host.state_message)
        if host.state == HostState.ERROR:
            transaction.on_commit(lambda: tasks.host_failover.delay(host.pk))
    publish_host(host.pk)


def reconcile(host_id: int, domains: list[DomainInfo]) -> dict[str, list[str]]:
    """Compare the host's domains with the database and repair drift through ``observe_domain``.

    VMs whose domain vanished go UNKNOWN, guests that powered off go POWEROFF, VMs found
    running again go RUNNING; domains Nephele did not create are reported on the host.
    """
    by_name = {d.name: d for d in domains}
    report: dict[str, list[str]] = {"changed": [], "unknown_domains": [], "stale_domains": []}
    vms = VirtualMachine.objects.filter(
        host_id=host_id, state__in=[S.RUNNING, S.SUSPENDED, S.POWEROFF, S.UNKNOWN], operation=""
    ).only("pk", "state")
    known = set()
    for vm in vms:
        known.add(vm.domain_name)
        dom = by_name.get(vm.domain_name)
        before = vm.state
        after = observe_domain(vm.pk, dom.power_state if dom else None, crashed=bool(dom and dom.crashed))
        if after is not None and after.state != before:
            report["changed"].append(f"{vm.domain_name}: {before} -> {after.state}")
    busy = {vm.domain_name for vm in VirtualMachine.objects.filter(host_id=host_id).exclude(state=S.DONE).only("pk")}
    leftover = sorted(n for n in by_name if n not in known and n not in busy)
    # Domains of our own VMs that live elsewhere now (evacuated while this host was down) or
    # are gone: the host came back, the VM must not run twice. The task destroys them.
    prefix = f"{settings.NEPHELE_DOMAIN_PREFIX}-"
    ours = {int(n[len(prefix) :]): n for n in leftover if n.startswith(prefix) and n[len(prefix) :].isdigit()}
    elsewhere = set(VirtualMachine.objects.filter(pk__in=ours).exclude(host_id=host_id).values_list("pk", flat=True))
    report["stale_domains"] = sorted(ours[pk] for pk in elsewhere)
    report["unknown_domains"] = [n for n in leftover if n not in report["stale_domains"]]
    if report["stale_domains"]:
        host_obj = Host.objects.get(pk=host_id)
        emit("host.stale_domains", host_obj, domains=",".join(report["stale_domains"]))
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is not None and host.unknown_domains != report["unknown_domains"]:
            if report["unknown_domains"]:
                log.warning("host %s has domains Nephele did not create: %s", host.name, report["unknown_domains"])
            host.unknown_domains = report["unknown_domains"]
            host.save(update_fields=["unknown_domains"])
            publish_host(host.pk)
    return report


def fence_command(host: Host) -> list[str] | None:
    """The configured fencing command for ``host`` (NEPHELE_FENCE_COMMAND with {name}, {uri})."""
    import shlex

    template = getattr(settings, "NEPHELE_FENCE_COMMAND", "")
    if not template:
        return None
    return [part.format(name=host.name, uri=host.uri) for part in shlex.split(template)]


#: states in which a VM on a failed host can no longer be vouched for
LOST_WITH_HOST = (S.RUNNING, S.SUSPENDED)


@transaction.atomic
def host_lost_vm(vm_id: int, host_id: int) -> bool:
    """A VM idle on a host in ERROR: nobody knows whether it still runs, so it shows UNKNOWN
    (reconciliation turns it back to RUNNING when the host answers again and the domain runs)."""
    from .lifecycle import set_state

    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.host_id != host_id or vm.busy or vm.state not in LOST_WITH_HOST:
        return False
    host = Host.objects.get(pk=host_id)
    set_state(vm, S.UNKNOWN, f"host {host.name} is in ERROR: {host.state_message}"[:255])
    return True


@transaction.atomic
def evacuate_vm(vm_id: int, host_id: int) -> bool:
    """Take an HA VM off its failed host and give it back to the scheduler (PENDING)."""
    from .lifecycle import finish

    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.host_id != host_id or not vm.ha or vm.state not in (S.RUNNING, S.UNKNOWN, S.BOOT, S.PROLOG):
        return False
    host = Host.objects.get(pk=host_id)
    vm.operation = "evacuate"  # closes the placement with this reason
    finish(vm, S.PENDING, f"host {host.name} failed; rescheduled elsewhere", saved_state_path="")
    emit("virtualmachine.evacuated", vm, from_host=host.name)
    from .. import tasks

    transaction.on_commit(lambda: tasks.schedule_vm.delay(vm.pk))
    return True
