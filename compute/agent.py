"""What a host agent does for one step of a VM operation: driver calls only, no ORM.

``execute`` takes a plain ``StepOrder`` (built by ``services.step_order``) and returns a
``StepResult`` that the task hands back to ``services.complete_step``. Every step is safe to
run twice: defining is idempotent, starting a running domain and destroying a stopped one
are no-ops, undefining a missing domain is a no-op.
"""

from __future__ import annotations

import os

from network import hostops as network_hostops
from specs import StepOrder, StepResult
from storage import hostops as storage_hostops

from . import context as seed
from .drivers.base import ComputeDriver, DomainNotFound, DomainSpec, DriverError, HostUnreachable, PowerState
from .drivers.registry import forget, get_driver


class S:
    """The steps, named as ``compute.states.VMState`` names them (plain strings: no Django here;
    ``tests/hostagent`` checks they match)."""

    PROLOG, BOOT, SAVE, SHUTDOWN, EPILOG, MIGRATE = "PROLOG", "BOOT", "SAVE", "SHUTDOWN", "EPILOG", "MIGRATE"


class Action:
    """The operations the agent distinguishes (``compute.states.Action`` values)."""

    REBOOT, DEPLOY, SUSPEND, TERMINATE, STOP = "reboot", "deploy", "suspend", "terminate", "stop"


def _hv_state(drv: ComputeDriver, name: str) -> str:
    try:
        return drv.get_info(name).power_state.value
    except DomainNotFound:
        return "missing"
    except DriverError:
        return ""


def _power(drv: ComputeDriver, name: str) -> PowerState | None:
    try:
        return drv.get_info(name).power_state
    except DomainNotFound:
        return None


def _write_seed(domain: DomainSpec) -> None:
    """(Re)write the VM's NoCloud seed where its CD-ROM points (idempotent: unchanged, untouched)."""
    if domain.context is None or not domain.context_path:
        return
    try:
        seed.build_nocloud_seed(domain.context, domain.context_path)
    except (OSError, seed.UserDataError) as exc:
        raise DriverError(f"cannot write the context seed {domain.context_path}: {exc}") from None


def execute(order: StepOrder) -> StepResult:
    """Carry out one step; DriverErrors become a failed result carrying the hypervisor's message."""
    drv = get_driver(order.driver, order.uri)
    name = order.domain.name
    try:
        saved = _run(drv, order)
    except DriverError as exc:
        if isinstance(exc, HostUnreachable):
            forget(order.driver, order.uri)
        return StepResult(ok=False, error=f"{order.step} failed: {exc}", hv_state=_hv_state(drv, name))
    if saved is False:
        return StepResult(
            ok=False,
            error=f"ACPI shutdown did not complete within {order.shutdown_timeout:.0f} s; the VM keeps running",
            hv_state=_hv_state(drv, name),
        )
    return StepResult(ok=True, hv_state=_hv_state(drv, name), saved_path=saved if isinstance(saved, str) else "")


def _run(drv: ComputeDriver, order: StepOrder) -> str | bool | None:
    name, op, step = order.domain.name, order.operation, order.step
    if op == Action.REBOOT:
        drv.reboot(name, hard=order.hard)
        return None
    if step == S.PROLOG:
        if order.domain.serial_log:
            os.makedirs(os.path.dirname(order.domain.serial_log), exist_ok=True)
        # boot files can only be checked for a local daemon; a remote host reports them at BOOT
        local = not order.uri.startswith("test:") and order.uri.split("://", 1)[-1].startswith("/")
        for path in (order.domain.kernel, order.domain.initrd, order.domain.disk_path):
            if local and path and not os.path.exists(path):
                raise DriverError(f"boot file {path} does not exist on the host")
        _write_seed(order.domain)
        storage_hostops.prepare_disks(order.uri, order.domain)
        network_hostops.plug_nics(order.uri, order.domain)
        return None
    if step == S.BOOT:
        if op == Action.DEPLOY:
            drv.define(order.domain)
            if order.restore_path:
                drv.restore(order.restore_path)
            else:
                drv.start(name)
        elif _power(drv, name) == PowerState.PAUSED:
            drv.resume(name)
        else:  # POWEROFF or UNKNOWN (perhaps vanished): (re)define — a resize may have changed it — and boot
            _write_seed(order.domain)
            drv.define(order.domain)
            drv.start(name)
        return None
    if step == S.SAVE:
        if op == Action.SUSPEND:
            drv.suspend(name)
            return None
        drv.save(name, order.save_path)
        return order.save_path
    if step == S.SHUTDOWN:
        if order.hard:
            drv.destroy(name)
            return None
        try:
            return None if drv.shutdown(name, order.shutdown_timeout) else False
        except DomainNotFound:
            return None
    if step == S.EPILOG:
        drv.destroy(name)
        drv.undefine(name)
        network_hostops.unplug_nics(order.uri, order.domain)
        storage_hostops.release_disks(order.uri, order.domain, terminate=op == Action.TERMINATE)
        if order.domain.context_path:  # the VM leaves the host; PROLOG writes it again wherever it lands
            seed.remove_seed(order.domain.context_path)
        if op != Action.STOP and order.save_path and os.path.exists(order.save_path):
            os.unlink(order.save_path)
        return None
    if step == S.MIGRATE:
        _migrate(drv, order)
        return None
    raise DriverError(f"no driver step for {op} at {step}")


def _migrate(drv: ComputeDriver, order: StepOrder) -> None:
    name = order.domain.name
    _write_seed(order.domain)  # the destination's QEMU opens the seed too
    if order.live:
        drv.migrate(name, order.dest_uri, live=True)
        return None
    dest = get_driver(order.dest_driver, order.dest_uri)
    try:
        power = drv.get_info(name).power_state
    except DomainNotFound:
        power = PowerState.SHUTOFF
    running = power in (PowerState.RUNNING, PowerState.BLOCKED, PowerState.PAUSED)
    if running:
        drv.save(name, order.save_path)
    drv.undefine(name)
    dest.define(order.domain)
    if running:
        dest.restore(order.save_path)
        os.unlink(order.save_path)
    elif order.was_running:  # it was RUNNING or UNKNOWN: boot it on its new host
        dest.start(name)
    return None
