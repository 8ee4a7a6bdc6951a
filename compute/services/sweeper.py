"""The transient-state sweeper: no VM stays in PROLOG, BOOT, SHUTDOWN, EPILOG … forever.

A step whose message was lost (a broker outage, an agent killed before it acknowledged, a
database error after the message was taken) leaves the VM in a transient state with nobody
working on it. Every ``NEPHELE_SWEEP_INTERVAL_S`` the sweeper looks at VMs whose current step
was queued more than ``NEPHELE_STEP_DEADLINE_S`` ago: it re-queues the same step with the same
sequence number (the agent's work is idempotent, and ``complete_step`` refuses a second report),
and after ``NEPHELE_STEP_MAX_TRIES`` such tries without progress it fails the step as if the
agent had reported an error (PROLOG → PROLOG_FAILURE with the reason, a stuck shutdown back to
RUNNING …), so an operator sees it and the VM is never silently stuck.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.events import emit
from portal import operations
from specs import StepResult

from ..models import VirtualMachine
from ..states import TRANSIENT
from .steps import advance


def stuck_vms() -> list[int]:
    """VMs in a transient state whose step was queued longer ago than the deadline."""
    before = timezone.now() - timedelta(seconds=settings.NEPHELE_STEP_DEADLINE_S)
    qs = VirtualMachine.objects.filter(state__in=TRANSIENT, operation_at__lt=before).exclude(operation="")
    return list(qs.order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def sweep_vm(vm_id: int) -> str:
    """Re-drive or fail one stuck VM (locked; a VM that progressed meanwhile is left alone)."""
    from .. import tasks

    vm = VirtualMachine.objects.select_for_update().filter(pk=vm_id).first()
    if vm is None or vm.state not in TRANSIENT:
        return ""
    deadline = settings.NEPHELE_STEP_DEADLINE_S
    verdict = operations.stuck_verdict(vm, deadline_s=deadline, max_tries=settings.NEPHELE_STEP_MAX_TRIES)
    if verdict == "redrive":
        vm.save(update_fields=["operation_at", "operation_tries"])
        emit("virtualmachine.step_redriven", vm, step=vm.state, seq=vm.operation_seq, attempt=vm.operation_tries)
        tasks.enqueue_step(vm)
    elif verdict == "fail":
        reason = (
            f"{vm.operation}: step {vm.state} made no progress in {vm.operation_tries + 1} × {deadline:.0f} s"
            " (its host's agent did not report)"
        )
        advance(vm, StepResult(ok=False, error=reason), reason=reason)
    return verdict
