"""Compute services: the only writers of VM and host state."""

from .hosts import delete_host, reconcile, record_probe, register_host, set_host_state
from .observation import observe_domain
from .vms import (
    ActionRequest,
    StepOrder,
    StepResult,
    complete_step,
    create_vms,
    domain_spec,
    perform_action,
    place_vm,
    step_order,
)

__all__ = [
    "ActionRequest",
    "StepOrder",
    "StepResult",
    "complete_step",
    "create_vms",
    "delete_host",
    "domain_spec",
    "observe_domain",
    "perform_action",
    "place_vm",
    "reconcile",
    "record_probe",
    "register_host",
    "set_host_state",
    "step_order",
]
