"""The VM manager's seams: where the storage, network and image managers join a VM.

Each manager registers its functions in its ``AppConfig.ready()``; compute calls the hooks and
never imports those managers (see docs/architecture.md). All run inside the caller's
transaction unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portal.hooks import Hook
from specs import DiskSpec, NicSpec

#: ``(actor, vms, template)`` inside ``create_vms``' transaction: give the new VMs their disks,
#: NICs, leases… (raise a portal error to refuse the create; nothing is kept)
vms_created: Hook[None] = Hook("compute.vms_created")
#: ``(vms)`` before the domain specs of many VMs are built together: load what ``disk_specs``,
#: ``nic_specs``, ``boot_files`` and ``network_config`` read, for all of them in one query per
#: manager (``prefetch_related_objects`` with ``to_attr``); those then read it instead of querying
specs_prefetch: Hook[None] = Hook("compute.specs_prefetch")
#: ``(actor, vms, image, size_bytes)`` inside ``create_vms``' transaction, for VMs created from an
#: image without a template: give each a copy of the image as its first disk (storage)
image_requested: Hook[None] = Hook("compute.image_requested")
#: ``(actor, vms, networks, security_groups)`` inside ``create_vms``' transaction: one NIC per
#: network id for each VM, in the given security groups (network); ids the actor may not use
#: are a 404 naming the field
nics_requested: Hook[None] = Hook("compute.nics_requested")
#: ``(actor)`` → ``[(image id, label)]``: the images the actor may boot a VM from (the create form)
bootable_images: Hook[list[tuple[int, str]]] = Hook("compute.bootable_images")
#: ``(actor, project)`` → ``{"networks": [(id, label)], "security_groups": [(id, label)]}``: what
#: the create form offers for the NICs it asks for (network)
nic_choices: Hook[dict[str, list[tuple[int, str]]]] = Hook("compute.nic_choices")
#: ``(vm)`` → the VM's ``DiskSpec``s (image disks, volumes), for its domain spec
disk_specs: Hook[list[DiskSpec]] = Hook("compute.disk_specs")
#: ``(vm)`` → the VM's ``NicSpec``s with their host plans
nic_specs: Hook[list[NicSpec]] = Hook("compute.nic_specs")
#: ``(vm)`` → ``(kernel, initrd, cmdline)`` from its template's kernel images, or None
boot_files: Hook[tuple[str, str, str] | None] = Hook("compute.boot_files")
#: ``(vm)`` → the cloud-init network config (version 2) for the VM's seed, or {}
network_config: Hook[dict[str, Any]] = Hook("compute.network_config")
#: ``(vm_ids)`` → ``{vm id: ["10.0.0.5", "fd00::5", …]}``: the addresses of those VMs, for the
#: pages (the VM list's IP column, a VM's Info tab); one query per manager, whatever the count
vm_addresses: Hook[dict[int, list[str]]] = Hook("compute.vm_addresses")
#: ``(vm)`` the VM reached DONE: release what it held (volumes, images, leases, public IPs)
vm_done: Hook[None] = Hook("compute.vm_done")
#: ``(vms)`` at the start of a scheduler pass over ``vms`` → ``keep(vm, cluster_of, ranked,
#: reason)`` → ``(ranked, reason)``: keep only the hosts (ids, best first) where the VM may go;
#: ``cluster_of`` maps host id → cluster id. The factory reads what it needs for the whole pass
#: (one snapshot, a few queries), so ``keep`` costs no query per VM.
placement_filter: Hook[Callable[[Any, Mapping[int, int | None], list[int], str], tuple[list[int], str]]] = Hook(
    "compute.placement_filter"
)


def wake_scheduler() -> None:
    """Another manager made room (a system datastore has space again): try PENDING VMs now.

    Safe to call from any manager: the scheduler's sweep is queued after commit.
    """
    for fn in capacity_available.functions():
        fn()


#: compute registers its scheduler sweep here; other managers call ``wake_scheduler``
capacity_available: Hook[None] = Hook("compute.capacity_available")
