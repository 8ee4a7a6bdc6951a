"""The ORM side of contextualization: what goes into a VM's NoCloud seed (compute/context.py).

``context_spec(vm)`` is read by ``vms.domain_spec`` at every step, so the seed always carries
the owner's current keys and the network manager's current config; the agent rewrites the ISO
only when its content changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, prefetch_related_objects

from portal.errors import InvalidInput
from specs import ContextSpec, DiskSpec
from tenants.models import SSHKey

from .. import hooks
from ..context import UserDataError, check_user_data, dns_hostname
from ..models import VirtualMachine

# the seed's CD-ROM: the default machine (i440fx) has IDE built in; the test guest's initramfs
# carries ata_piix, sr_mod, cdrom and isofs for it
CONTEXT_TARGET = "hdc"
CONTEXT_BUS = "ide"


def _network_config(vm: VirtualMachine) -> dict[str, Any]:
    """The network manager's cloud-init config for the VM (the first non-empty answer)."""
    return next((cfg for cfg in hooks.network_config(vm) if cfg), {})


def vm_hostname(vm: VirtualMachine) -> str:
    """The VM's hostname: its name as one DNS label, ``vm-<id>`` when nothing of it is left."""
    return dns_hostname(vm.name, f"vm-{vm.pk}")


def owner_keys(vm: VirtualMachine) -> list[SSHKey]:
    """The VM owner's SSH keys, oldest first (the first is the one the test guest prints)."""
    loaded = VirtualMachine._meta.get_field("owner").is_cached(vm)
    prefetched = getattr(vm.owner, "spec_keys", None) if loaded else None
    if prefetched is not None:
        return list(prefetched)
    return list(SSHKey.objects.filter(user_id=vm.owner_id).order_by("created_at", "pk"))


def prefetch_keys(vms: list[VirtualMachine]) -> None:
    """The keys of all the VMs' owners in one query (``owner_keys`` then reads them)."""
    rows = SSHKey.objects.order_by("created_at", "pk")
    prefetch_related_objects(vms, Prefetch("owner__ssh_keys", queryset=rows, to_attr="spec_keys"))


def context_spec(vm: VirtualMachine) -> ContextSpec:
    """The seed of ``vm``: hostname, its owner's public keys, network config, user-data."""
    return ContextSpec(
        instance_id=str(vm.uuid),
        hostname=vm_hostname(vm),
        ssh_keys=tuple(k.public_key for k in owner_keys(vm)),
        network_config=_network_config(vm),
        user_data=vm.user_data,
    )


def seed_path(vm: VirtualMachine) -> str:
    """Where the agent writes the seed on the VM's host."""
    return str(settings.NEPHELE_STATE_DIR / "context" / f"{vm.domain_name}.iso")


def seed_disk(path: str) -> DiskSpec:
    """The read-only CD-ROM carrying the seed."""
    return DiskSpec(target=CONTEXT_TARGET, path=path, format="raw", device="cdrom", bus=CONTEXT_BUS, readonly=True)


def validate_user_data(text: str) -> str:
    """``text`` if it fits in a seed (≤ 16 KiB, a format cloud-init reads); InvalidInput otherwise."""
    try:
        check_user_data(text)
    except UserDataError as exc:
        raise InvalidInput(str(exc), field="user_data") from None
    return text


@dataclass(frozen=True)
class ContextSummary:
    """What the VM page and the API show of a VM's context (never the user-data itself)."""

    hostname: str
    keys: list[dict[str, str]]
    user_data_set: bool
    user_data_bytes: int
    seed_path: str
    network_configured: bool


def context_summary(vm: VirtualMachine) -> ContextSummary:
    """The VM's context as people see it."""
    data: Any = _network_config(vm)
    return ContextSummary(
        hostname=vm_hostname(vm),
        keys=[{"name": k.name, "fingerprint": k.fingerprint} for k in owner_keys(vm)],
        user_data_set=bool(vm.user_data.strip()),
        user_data_bytes=len(vm.user_data.encode()),
        seed_path=seed_path(vm),
        network_configured=bool(data),
    )
