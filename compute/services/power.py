"""Host power and maintenance: the only writer of a host's BMC settings, power state and
maintenance state.

- ``configure_bmc``: the host's power driver (``none``, ``redfish``, ``ipmi``), address and
  credentials. The password is write-only: stored encrypted (Fernet, with a key derived from
  ``SECRET_KEY``; the project has no other secret store) and never returned.
- ``request_power``: on / off / reset / status. The row records the action and a sequence
  number; ``compute.host_power`` calls the BMC after commit and reports through ``power_done``
  (a stale or repeated report changes nothing).
- ``enter_maintenance`` / ``drain_host`` / ``activate_host``: no new placements (the scheduler
  only places on MONITORED hosts), the VMs migrated away through the scheduler (live where the
  driver can), and back to service.
- ``fence_host``: host HA powers a failed host off through its BMC before its VMs restart
  elsewhere (``compute.host_failover``).
- Energy policy entry points: ``power_off_empty_hosts`` and ``power_on_spare_host`` (no energy
  policy exists in the scheduler yet; a periodic task or an operator script calls these).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from monitoring.audit import record_action
from monitoring.events import emit
from portal import outbox
from portal.errors import Conflict, InvalidInput, NotFound, ServiceError
from portal.events import publish_host
from tenants.querysets import Actor

from ..drivers.power import (
    BMC,
    PowerAction,
    PowerError,
    PowerState,
    get_power_driver,
    power_driver_names,
    validate_address,
)
from ..models import Host, VirtualMachine
from ..states import HostState
from ..states import VMState as S
from .hosts import _require_admin

log = logging.getLogger(__name__)

POWER_ACTIONS = tuple(a.value for a in PowerAction)
#: host states from which a host may be switched off or reset: it serves no placements (an
#: operator puts it into maintenance first), or it failed (fencing by hand)
POWER_OFF_FROM = frozenset({HostState.MAINTENANCE, HostState.DISABLED, HostState.OFFLINE, HostState.ERROR})
#: VM states a drain migrates (others stay and are listed)
DRAINABLE = (S.RUNNING, S.POWEROFF, S.UNKNOWN)


# --------------------------------------------------------------------------------------------
# the BMC password, stored encrypted
# --------------------------------------------------------------------------------------------
def _fernet() -> Fernet:
    key = hashlib.sha256(b"nephele.bmc-password:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(password: str) -> str:
    return _fernet().encrypt(password.encode()).decode() if password else ""


def unseal(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise PowerError("the stored BMC password cannot be decrypted (SECRET_KEY changed?); set it again") from None


def bmc_of(host: Host) -> BMC:
    """The plain values a power driver needs (the password decrypted)."""
    return BMC(
        driver=host.power_driver,
        address=host.bmc_address,
        username=host.bmc_username,
        password=unseal(host.bmc_password),
        system=host.bmc_system,
        verify_tls=host.bmc_verify_tls,
    )


def _lock(host_id: int) -> Host:
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None:
        raise NotFound("host not found")
    return host


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{name} is at most {limit} characters", field=name)
    return value


# --------------------------------------------------------------------------------------------
# BMC settings
# --------------------------------------------------------------------------------------------
@transaction.atomic
def configure_bmc(
    actor: Actor,
    host_id: int,
    *,
    power_driver: str,
    bmc_address: str = "",
    bmc_username: str = "",
    bmc_password: str | None = None,
    bmc_system: str = "",
    bmc_verify_tls: bool = True,
    ip: str | None = None,
) -> Host:
    """Set the host's power driver and BMC. ``bmc_password`` None keeps the stored one."""
    _require_admin(actor)
    if power_driver not in power_driver_names():
        raise InvalidInput(f"power_driver must be one of {', '.join(power_driver_names())}", field="power_driver")
    address = _text(bmc_address, "bmc_address", 255)
    username = _text(bmc_username, "bmc_username", 64)
    system = _text(bmc_system, "bmc_system", 255)
    problem = validate_address(power_driver, address)
    if problem:
        raise InvalidInput(f"bmc_address: {problem}", field="bmc_address")
    if bmc_password is not None and len(bmc_password) > 255:
        raise InvalidInput("bmc_password is at most 255 characters", field="bmc_password")
    if power_driver == "ipmi" and len(username) > 16:
        raise InvalidInput("bmc_username: IPMI user names are at most 16 characters", field="bmc_username")
    host = _lock(host_id)
    if host.power_operation:
        raise Conflict(f"a power {host.power_operation} is in flight on {host.name}; wait for it", field="power_driver")
    host.power_driver = power_driver
    host.bmc_address = address if power_driver != "none" else ""
    host.bmc_username = username if power_driver != "none" else ""
    host.bmc_system = system if power_driver == "redfish" else ""
    host.bmc_verify_tls = bool(bmc_verify_tls)
    if power_driver == "none":
        host.bmc_password = ""
    elif bmc_password is not None:
        host.bmc_password = seal(bmc_password)
    host.power_state = PowerState.UNKNOWN
    host.power_message = ""
    host.save()
    record_action(actor, host, "configure_bmc", ip=ip, power_driver=power_driver, bmc_address=address)
    publish_host(host.pk)
    return host


# --------------------------------------------------------------------------------------------
# power actions
# --------------------------------------------------------------------------------------------
@transaction.atomic
def request_power(actor: Actor, host_id: int, action: str, *, ip: str | None = None) -> Host:
    """Queue ``action`` (on, off, reset, status) for the host's BMC; 409 when the host serves
    placements (off, reset), still holds VMs, has no BMC, or another power action is in flight."""

    _require_admin(actor)
    if action not in POWER_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(POWER_ACTIONS)}", field="action")
    host = _lock(host_id)
    if host.power_driver == "none":
        raise Conflict(f"host {host.name} has no BMC configured (power driver 'none')", field="power_driver")
    if host.power_operation:
        raise Conflict(f"a power {host.power_operation} is in flight on {host.name}", field="action")
    if action in (PowerAction.OFF, PowerAction.RESET):
        if host.state not in POWER_OFF_FROM:
            raise Conflict(
                f"host {host.name} is {host.state}; put it into maintenance before power {action}", field="action"
            )
        resident = _resident(host).count()
        if resident and host.state != HostState.ERROR:
            raise Conflict(f"host {host.name} still has {resident} VM(s); drain it first", field="action")
    host.power_operation = action
    host.power_seq += 1
    host.power_message = ""
    host.save(update_fields=["power_operation", "power_seq", "power_message"])
    record_action(actor, host, f"power_{action}", ip=ip)
    emit(f"host.power.{action}.requested", host, actor=actor)
    publish_host(host.pk)
    # through the outbox, as every step order: a broker down at commit delays the BMC call, never loses it
    outbox.send("compute.host_power", (host.pk, host.power_seq))
    return host


@dataclass(frozen=True)
class PowerOrder:
    """What ``compute.host_power`` carries out: plain values, read from the committed row."""

    host_id: int
    seq: int
    action: PowerAction
    bmc: BMC


def power_order(host_id: int, seq: int) -> PowerOrder | None:
    """The power action ``seq`` of the host, or None when it is done or superseded."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None or host.power_seq != seq or not host.power_operation:
        return None
    try:
        bmc = bmc_of(host)
    except PowerError as exc:
        power_done(host_id, seq, None, str(exc))
        return None
    return PowerOrder(host_id, seq, PowerAction(host.power_operation), bmc)


@transaction.atomic
def power_done(host_id: int, seq: int, state: PowerState | None, error: str = "") -> Host | None:
    """The BMC's answer to power action ``seq``; a stale or repeated report changes nothing."""
    host = Host.objects.select_for_update().filter(pk=host_id).first()
    if host is None or host.power_seq != seq or not host.power_operation:
        return None
    action = host.power_operation
    host.power_operation = ""
    host.power_checked_at = timezone.now()
    if state is not None:
        host.power_state = state.value
    host.power_message = error[:2000]
    host.save(update_fields=["power_operation", "power_checked_at", "power_state", "power_message"])
    if error:
        emit("host.power.failed", host, action=action, message=error[:500])
    else:
        emit(f"host.power.{action}", host, power_state=host.power_state)
    publish_host(host.pk)
    return host


def run_power(order: PowerOrder) -> tuple[PowerState | None, str]:
    """Call the BMC (no database): the state it reports afterwards, or the error."""
    try:
        return get_power_driver(order.bmc).run(order.action), ""
    except PowerError as exc:
        return None, str(exc)


# --------------------------------------------------------------------------------------------
# maintenance
# --------------------------------------------------------------------------------------------
def _resident(host: Host) -> QuerySet[VirtualMachine]:
    return VirtualMachine.objects.filter(host=host).exclude(state=S.DONE)


def resident_vms(host_id: int) -> list[VirtualMachine]:
    """The VMs still on the host (what the maintenance page and the CLI list)."""
    return list(VirtualMachine.objects.filter(host_id=host_id).exclude(state=S.DONE).order_by("pk"))


@transaction.atomic
def enter_maintenance(actor: Actor, host_id: int, *, reason: str = "", ip: str | None = None) -> Host:
    """No new placements on the host; its VMs keep running until drained. Idempotent."""
    _require_admin(actor)
    reason = _text(reason, "reason", 255)
    host = _lock(host_id)
    if host.state == HostState.MAINTENANCE:
        return host
    before = host.state
    host.state = HostState.MAINTENANCE
    host.maintenance_reason = reason
    host.state_message = f"maintenance by {getattr(actor, 'username', 'system')}" + (f": {reason}" if reason else "")
    host.save(update_fields=["state", "maintenance_reason", "state_message"])
    record_action(actor, host, "maintenance", ip=ip, reason=reason)
    emit(f"host.state.{host.state}", host, actor=actor, from_state=before)
    publish_host(host.pk)
    return host


@dataclass
class DrainReport:
    """What a drain started: VMs migrating, VMs that stay (with why)."""

    host: Host
    migrating: list[int] = field(default_factory=list)
    live: list[int] = field(default_factory=list)
    stays: dict[int, str] = field(default_factory=dict)


def drain_host(actor: Actor, host_id: int, *, ip: str | None = None) -> DrainReport:
    """Put the host into maintenance and migrate its VMs away through the scheduler: running
    VMs live where the host's driver can, the others cold. Each VM moves in its own transaction
    (VM row before host rows, the global lock order); a VM that cannot move now stays and is
    reported. Safe to repeat: VMs already migrating are left alone."""
    from ..drivers.registry import capabilities
    from .actions import ActionRequest, perform_action

    host = enter_maintenance(actor, host_id, ip=ip)
    report = DrainReport(host=host)
    can_live = bool(capabilities(host.driver, host.uri).get("live_migrate"))
    for vm in resident_vms(host_id):
        if vm.state == S.MIGRATE:
            report.migrating.append(vm.pk)
            continue
        if vm.operation or vm.state not in DRAINABLE:
            report.stays[vm.pk] = f"{vm.state}{' (busy)' if vm.operation else ''}: not migratable now"
            continue
        live = can_live and vm.state == S.RUNNING
        try:
            perform_action(actor, vm.pk, ActionRequest(action="migrate", live=live), ip=ip)
        except ServiceError as exc:
            report.stays[vm.pk] = exc.message
            continue
        report.migrating.append(vm.pk)
        if live:
            report.live.append(vm.pk)
    with transaction.atomic():
        host = _lock(host_id)
        emit("host.drain", host, actor=actor, migrating=len(report.migrating), stays=len(report.stays))
    report.host = host
    return report


@transaction.atomic
def activate_host(actor: Actor, host_id: int, *, ip: str | None = None) -> Host:
    """Bring a host out of maintenance: it is probed again and placements return once it is
    MONITORED. A host its BMC reports off is powered on first."""
    from .. import tasks

    _require_admin(actor)
    host = _lock(host_id)
    if host.state != HostState.MAINTENANCE:
        raise Conflict(f"host {host.name} is {host.state}, not in maintenance", field="action")
    before = host.state
    host.state = HostState.INIT
    host.maintenance_reason = ""
    host.state_message = f"activated by {getattr(actor, 'username', 'system')}"
    host.failed_probes = 0
    host.save(update_fields=["state", "maintenance_reason", "state_message", "failed_probes"])
    record_action(actor, host, "activate", ip=ip)
    emit(f"host.state.{host.state}", host, actor=actor, from_state=before)
    publish_host(host.pk)
    if host.power_driver != "none" and host.power_state == PowerState.OFF and not host.power_operation:
        request_power(actor, host.pk, PowerAction.ON, ip=ip)
    transaction.on_commit(lambda: tasks.send_probe(host))
    return host


# --------------------------------------------------------------------------------------------
# fencing (host HA)
# --------------------------------------------------------------------------------------------
def has_bmc(host: Host) -> bool:
    return host.power_driver != "none"


def fence_host(host_id: int) -> tuple[bool, str]:
    """Power a failed host off through its BMC and check that it is off (called by
    ``compute.host_failover`` in its task; the BMC call runs outside any transaction)."""
    host = Host.objects.get(pk=host_id)
    try:
        state = get_power_driver(bmc_of(host)).run(PowerAction.OFF)
    except PowerError as exc:
        return False, str(exc)
    with transaction.atomic():
        locked = _lock(host_id)
        locked.power_state = state.value
        locked.power_checked_at = timezone.now()
        locked.save(update_fields=["power_state", "power_checked_at"])
    if state != PowerState.OFF:
        return False, f"the BMC still reports the host {state.value} after power off"
    return True, f"powered off through its {host.power_driver} BMC at {host.bmc_address}"


# --------------------------------------------------------------------------------------------
# energy policy entry points
# --------------------------------------------------------------------------------------------
ENERGY_REASON = "energy: no VMs"


def power_off_empty_hosts(actor: Actor = None, *, keep_spare: int = 1) -> list[int]:
    """Put empty MONITORED hosts that have a BMC into maintenance and power them off, keeping
    ``keep_spare`` empty hosts on for new VMs. Answers the ids of the hosts switched off."""
    empty = list(
        Host.objects.filter(state=HostState.MONITORED, alloc_vms=0)
        .exclude(power_driver="none")
        .exclude(pk__in=VirtualMachine.objects.exclude(state=S.DONE).exclude(host=None).values("host"))
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)
    )
    off: list[int] = []
    for pk in empty[keep_spare:]:
        enter_maintenance(actor, pk, reason=ENERGY_REASON)
        try:
            request_power(actor, pk, PowerAction.OFF)
        except Conflict as exc:  # a VM landed meanwhile: bring it back
            log.info("energy: host %s not powered off: %s", pk, exc.message)
            activate_host(actor, pk)
            continue
        off.append(pk)
    return off


def power_on_spare_host(actor: Actor = None) -> Host | None:
    """Bring back one host the energy policy powered off (capacity is short): activate powers it
    on and probes it. None when there is none."""
    host = (
        Host.objects.filter(state=HostState.MAINTENANCE, maintenance_reason=ENERGY_REASON)
        .exclude(power_driver="none")
        .order_by("priority", "pk")
        .first()
    )
    return None if host is None else activate_host(actor, host.pk)
