"""The VM row lock: the public way for every manager to act on a VM under the access gate.

Services of the storage and network managers (attach a volume, a NIC) lock the VM with this
before they change what hangs off it, so two actions on one VM are serialized and the loser
sees the winner's state (CONVENTIONS §4).
"""

from __future__ import annotations

from typing import Any

from portal.errors import NotFound
from tenants.querysets import Actor

from .models import VirtualMachine


def lock_vm(actor: Actor, vm_id: Any, action: str = "manage", *, field: str | None = None) -> VirtualMachine:
    """The VM row (with its host), locked, if ``actor`` may ``action`` it (``actor`` None: the
    system); 404 otherwise, exactly like a missing VM. Only the VM's own row is locked."""
    qs = VirtualMachine.objects.all() if actor is None else VirtualMachine.objects.restrict(actor, action)
    try:
        return qs.select_related("host").select_for_update(of=("self",)).get(pk=vm_id)
    except (VirtualMachine.DoesNotExist, ValueError, TypeError):
        raise NotFound("virtual machine not found", field=field) from None
