"""The network manager's actions and the allowed-from table for each (written once: the
service guard's 409, the API through the services, and the buttons of the VM page's NIC
section read it).

A virtual network has no life cycle of its own (it exists or it does not); what has one is a
VM's NIC, and a NIC may change only while its VM is idle and either on no host ("cold": the
VM's definition changes for its next deploy) or RUNNING on a host that hotplugs NICs ("hot").
"""

from __future__ import annotations

from django.db import models

from compute.states import VMState
from portal.operations import ActionSpec, ActionTable


class NicAction(models.TextChoices):
    ATTACH = "attach_nic", "Attach NIC"
    DETACH = "detach_nic", "Detach"


#: VM states in which a NIC may be added or removed without a hypervisor: the VM is defined on no host.
COLD_STATES: frozenset[str] = frozenset({VMState.PENDING, VMState.HOLD, VMState.STOPPED, VMState.UNDEPLOYED})
#: VM states in which a NIC is added or removed live (the host must hotplug NICs).
HOT_STATES: frozenset[str] = frozenset({VMState.RUNNING})

#: Keyed by the NIC action, read against the VM's state and operation in flight.
NIC_TABLE = ActionTable(
    {
        NicAction.ATTACH: ActionSpec(COLD_STATES | HOT_STATES),
        NicAction.DETACH: ActionSpec(COLD_STATES | HOT_STATES),
    }
)


def nic_actions(vm_state: str, *, busy: bool, hotplug: bool) -> list[str]:
    """The NIC actions a VM in ``vm_state`` allows (its NIC section's buttons); ``hotplug``:
    its host can add NICs to a running guest (the service refuses hot changes otherwise)."""
    if vm_state in HOT_STATES and not hotplug:
        return []
    return NIC_TABLE.actions_for(vm_state, busy=busy)
