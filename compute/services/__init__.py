"""Compute services: the only writers of VM and host state.

``lifecycle`` holds the state machine's primitives; ``create``, ``placement``, ``actions`` and
``steps`` are the VM's services by concern; ``hosts`` and ``observation`` the hosts' and the
reconciliation loop's.
"""

from specs import StepOrder, StepResult

from . import hosts, power, steps, sweeper
from .actions import ActionRequest, perform_action
from .create import create_vms
from .hosts import delete_host, reconcile, record_probe, register_host, set_host_state
from .observation import observe_domain
from .placement import place_pending, place_vm
from .steps import complete_step, domain_spec, step_order

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
    "place_pending",
    "place_vm",
    "reconcile",
    "record_probe",
    "hosts",
    "power",
    "register_host",
    "set_host_state",
    "step_order",
    "steps",
    "sweeper",
]
