"""Volume and VM disk states, the volume actions, and the allowed-from table for every one of
them: written once, read by the service guard (``storage.services.volumes``: a refusal is a
409), the API (through the services) and the buttons on the volume page and the VM page's
Storage section (``storage.templatetags.storage_volumes``).

Volume life cycle: creating → available ⇄ (attaching → in-use → detaching); resizing,
snapshotting, reverting and deleting are transient and return to the state before them
(``previous_state``); a failed create or delete leaves ``error`` (deletable). While an
operation runs (``Volume.operation``) nothing else may start on the volume except ``recover``.
"""

from __future__ import annotations

from django.db import models

from compute.states import VMState
from portal.operations import ActionSpec, ActionTable


class VolumeState(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    ATTACHING = "attaching", "Attaching"
    IN_USE = "in-use", "In use"
    DETACHING = "detaching", "Detaching"
    RESIZING = "resizing", "Growing"
    SNAPSHOTTING = "snapshotting", "Snapshotting"
    REVERTING = "reverting", "Reverting"
    SAVING = "saving", "Saving as image"
    DELETING = "deleting", "Deleting"
    ERROR = "error", "Error"


class VMDiskState(models.TextChoices):
    ATTACHED = "attached", "Attached"
    ATTACHING = "attaching", "Attaching"
    DETACHING = "detaching", "Detaching"
    SAVING = "saving", "Saving as image"


class VolumeAction(models.TextChoices):
    """What a user may ask of a volume; the asynchronous ones are also the ``operation`` in flight."""

    CREATE = "create", "Create"
    ATTACH = "attach", "Attach"
    DETACH = "detach", "Detach"
    GROW = "grow", "Grow"
    SNAPSHOT = "snapshot", "Take snapshot"
    REVERT = "revert", "Revert"
    DELETE_SNAPSHOT = "delete-snapshot", "Delete snapshot"
    DELETE = "delete", "Delete"
    RECOVER = "recover", "Recover"


V = VolumeState
A = VolumeAction

#: States in which the volume's own work is in flight.
TRANSIENT: frozenset[str] = frozenset(
    {V.CREATING, V.ATTACHING, V.DETACHING, V.RESIZING, V.SNAPSHOTTING, V.REVERTING, V.SAVING, V.DELETING}
)
#: Transient states whose ``previous_state`` is kept by a new operation (a create's or a
#: delete's previous state is not one to return to).
KEEP_PREVIOUS: frozenset[str] = frozenset({V.CREATING, V.DELETING})
#: Idle states a volume can rest in.
IDLE: frozenset[str] = frozenset({V.AVAILABLE, V.IN_USE, V.ERROR})
_DATA = frozenset({V.AVAILABLE, V.IN_USE})  # its file holds the user's data and is not being changed

ACTIONS: dict[str, ActionSpec] = {
    A.ATTACH: ActionSpec(frozenset({V.AVAILABLE}), target=V.IN_USE),
    A.DETACH: ActionSpec(frozenset({V.IN_USE}), target=V.AVAILABLE),
    A.GROW: ActionSpec(_DATA),
    A.SNAPSHOT: ActionSpec(_DATA),
    A.REVERT: ActionSpec(_DATA, danger=True),
    A.DELETE_SNAPSHOT: ActionSpec(_DATA),
    A.DELETE: ActionSpec(frozenset({V.AVAILABLE, V.ERROR}), danger=True),
    A.RECOVER: ActionSpec(TRANSIENT, admin_only=True, while_busy=True),
}
TABLE = ActionTable(ACTIONS)

# The VM side: a volume is attached, detached or grown "cold" (the VM's disks for its next boot)
# while its VM is in one of these states, "hot" (disk hotplug) while it runs on a host that can.
COLD_VM_STATES: frozenset[str] = frozenset(
    {VMState.PENDING, VMState.HOLD, VMState.POWEROFF, VMState.STOPPED, VMState.UNDEPLOYED}
)
HOT_VM_STATES: frozenset[str] = frozenset({VMState.RUNNING})
#: Snapshots and reverts need the file at rest: the volume detached, or its VM in a cold state.
SNAPSHOT_VM_STATES = COLD_VM_STATES
#: What the VM side allows: attach, detach and grow need the VM idle in a cold or hot state.
VM_SIDE = ActionTable({a: ActionSpec(COLD_VM_STATES | HOT_VM_STATES) for a in (A.ATTACH, A.DETACH, A.GROW)})


def vm_side_actions(vm_state: str, *, busy: bool, hotplug: bool) -> list[str]:
    """The volume actions a VM in ``vm_state`` allows (the VM page's Storage buttons);
    ``hotplug``: its host can change the disks of a running guest."""
    if vm_state in HOT_VM_STATES and not hotplug:
        return []
    return VM_SIDE.actions_for(vm_state, busy=busy)


def volume_actions(state: str, *, busy: bool, admin: bool = False) -> list[str]:
    """The actions the volume page offers for a volume in ``state`` (its buttons)."""
    return TABLE.actions_for(state, busy=busy, admin=admin)
