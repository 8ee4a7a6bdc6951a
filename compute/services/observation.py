"""Observation: what the hypervisor reports about idle VMs (the reconciliation loop's writer),
including crash handling by restart policy."""

from __future__ import annotations

import time

from django.db import transaction

from monitoring.events import emit
from specs import PowerState

from ..models import VirtualMachine
from ..states import Action, RestartPolicy
from ..states import VMState as S
from .lifecycle import begin, set_state

# --------------------------------------------------------------------------------------------
_OBSERVED = {
    PowerState.RUNNING: S.RUNNING,
    PowerState.BLOCKED: S.RUNNING,
    PowerState.PAUSED: S.SUSPENDED,
    PowerState.SHUTOFF: S.POWEROFF,
    PowerState.SHUTDOWN: S.RUNNING,
    PowerState.CRASHED: S.POWEROFF,
}


@transaction.atomic
def observe_domain(
    vm_id: int, power: PowerState | None, *, raw: str = "", crashed: bool = False
) -> VirtualMachine | None:
    """Apply what the hypervisor says about an idle VM. ``power`` None: the domain vanished.

    ``crashed``: it stopped without the guest shutting down (process died, destroyed from
    outside). A VM whose restart policy allows it is booted again, at most ``restart_max``
    times in ``restart_window_s``; past that it parks in CRASH_FAILURE and says so.
    """
    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.busy or vm.state not in (S.RUNNING, S.SUSPENDED, S.POWEROFF, S.UNKNOWN):
        return vm
    if crashed and vm.state in (S.RUNNING, S.UNKNOWN):
        _handle_crash(vm, raw or (power.value if power else "missing"))
        return vm
    if power is None:
        if vm.state in (S.RUNNING, S.SUSPENDED, S.POWEROFF):
            set_state(vm, S.UNKNOWN, "domain not found on its host", hv_state="missing")
        return vm
    new = _OBSERVED.get(power)
    hv = raw or power.value
    if new is None or new == vm.state:
        if vm.hv_state != hv:
            vm.hv_state = hv
            vm.save(update_fields=["hv_state"])
        return vm
    reason = {
        S.POWEROFF: "the guest powered off or crashed",
        S.RUNNING: "domain found running again",
        S.SUSPENDED: "domain found paused",
    }.get(new, "observed")
    set_state(vm, new, reason, hv_state=hv)
    return vm


def _handle_crash(vm: VirtualMachine, hv: str) -> None:
    emit("virtualmachine.crashed", vm, hv_state=hv)
    if vm.restart_policy != RestartPolicy.ON_CRASH:
        set_state(vm, S.POWEROFF, "the VM crashed (restart policy: never)", hv_state=hv)
        return
    now = time.time()
    recent = [t for t in vm.restart_times if now - t < vm.restart_window_s]
    if len(recent) >= vm.restart_max:
        vm.restart_times = recent
        set_state(
            vm,
            S.CRASH_FAILURE,
            f"crashed {len(recent) + 1} times within {vm.restart_window_s} s; not restarted again",
            hv_state=hv,
            operation=Action.RESUME,
            previous_state=S.POWEROFF,
        )
        emit("virtualmachine.restart_given_up", vm, restarts=len(recent))
        return
    vm.restart_times = [*recent, now]
    vm.hv_state = hv
    begin(vm, Action.RESUME, S.BOOT, f"restart after crash ({len(recent) + 1} of {vm.restart_max})")
    emit("virtualmachine.restarted", vm, attempt=len(recent) + 1)
