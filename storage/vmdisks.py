"""The storage manager's part of a VM's domain: its disks (image disk, volumes, context CD-ROM).

``disk_specs(vm)`` is called by ``compute.services.vms.domain_spec`` (ORM side);
``storage.hostops`` prepares and releases the files on the host (agent side, no ORM).
"""

from __future__ import annotations

from typing import Any

from compute.drivers.base import DiskSpec


def disk_specs(vm: Any) -> list[DiskSpec]:
    """The disks of ``vm`` beyond its boot image's own file (none until volumes land)."""
    return []


def boot_files(vm: Any) -> tuple[str, str]:
    """Kernel and initrd paths from the VM's kernel / ramdisk images; ("", "") when it has none."""
    return "", ""


def vms_using_image(image_id: int) -> list[Any]:
    """The VMs (not DONE) whose disks use image ``image_id`` (for the image manager's delete check)."""
    return []


def add_template_disk(template: Any, image: Any, *, size_bytes: int = 0) -> None:
    """Give ``template`` a disk from ``image`` (used by the OVF import)."""
    raise NotImplementedError("template disks arrive with the storage manager")
