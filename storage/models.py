"""Storage tables: datastores (libvirt storage pools with a driver), template and VM disks, volumes.

Nothing here calls the outside world; state changes go through ``storage.services``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from compute.models import Cluster, host_name_validator, name_validator
from portal.models import Operated
from tenants.querysets import AdminOnlyQuerySet, RestrictedQuerySet

from .states import VMDiskState, VolumeState  # their home is storage.states; importable from here too


class DatastoreKind(models.TextChoices):
    IMAGE = "image", "Image datastore (holds the repository)"
    SYSTEM = "system", "System datastore (holds running VMs' disks)"


class DatastoreDriver(models.TextChoices):
    DIR = "dir", "Directory"
    LOGICAL = "logical", "LVM volume group"
    NETFS = "netfs", "NFS"
    RBD = "rbd", "Ceph RBD"


class DatastoreState(models.TextChoices):
    READY = "ready", "Ready"
    DISABLED = "disabled", "Disabled"
    ERROR = "error", "Error"


class CloneMode(models.TextChoices):
    COW = "cow", "Copy-on-write qcow2 overlay on the image"
    COPY = "copy", "Full copy of the image"


class Datastore(models.Model):
    """A storage pool with a driver: an image datastore or a system datastore.

    ``path`` is where its files live on the hosts that reach it (the pool target); ``source``
    carries the driver's own settings (NFS server and export, LVM volume group, Ceph pool,
    monitors and secret). ``clusters`` empty means every cluster reaches it.
    """

    name = models.CharField(max_length=63, unique=True, validators=[host_name_validator])
    kind = models.CharField(max_length=8, choices=DatastoreKind.choices, default=DatastoreKind.IMAGE)
    driver = models.CharField(max_length=8, choices=DatastoreDriver.choices, default=DatastoreDriver.DIR)
    path = models.CharField(max_length=1024, help_text="pool target path on the hosts")
    source = models.JSONField(default=dict, blank=True, help_text="driver settings (NFS host/dir, VG, Ceph pool…)")
    clone_mode = models.CharField(max_length=8, choices=CloneMode.choices, default=CloneMode.COW)
    clusters = models.ManyToManyField(Cluster, blank=True, related_name="datastores")
    state = models.CharField(max_length=8, choices=DatastoreState.choices, default=DatastoreState.READY)
    state_message = models.TextField(blank=True)
    total_bytes = models.PositiveBigIntegerField(default=0)
    used_bytes = models.PositiveBigIntegerField(default=0)
    free_bytes = models.PositiveBigIntegerField(default=0)
    monitored_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def pool_name(self) -> str:
        """The libvirt storage pool's name for this datastore."""
        return f"nephele-ds-{self.pk}"

    @property
    def used_percent(self) -> int:
        return round(100 * self.used_bytes / self.total_bytes) if self.total_bytes else 0


# --------------------------------------------------------------------------------------------
# template disks, VM disks, volumes (the "Volumes and VM disks" part)
# --------------------------------------------------------------------------------------------
GIB = 1024**3
MAX_VOLUME_BYTES = 16 * 1024 * GIB  # 16 TiB


class VolumeFormat(models.TextChoices):
    QCOW2 = "qcow2", "qcow2"
    RAW = "raw", "raw"


class TemplateDiskQuerySet(RestrictedQuerySet["TemplateDisk"]):
    project_path = "template__project"


class TemplateDisk(models.Model):
    """One disk a VM template gives each of its VMs, in ``position`` order.

    From an image (OS disk, data block, CD-ROM; a kernel or ramdisk image gives the VM's
    kernel / initrd instead of a disk), or an empty volatile disk of ``size_bytes``. For an
    image disk ``size_bytes`` > the image's virtual size grows the VM's copy to that size.
    """

    template = models.ForeignKey("compute.VMTemplate", on_delete=models.CASCADE, related_name="disks")
    # deleting an image (refused while a VM uses it) takes it out of the templates that list it
    image = models.ForeignKey("images.Image", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    size_bytes = models.PositiveBigIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)
    cmdline = models.CharField(
        max_length=1024, blank=True, help_text="kernel images: the kernel command line ({vm_name} is the VM's id)"
    )

    objects = TemplateDiskQuerySet.as_manager()

    class Meta:
        ordering = ["template", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.template_id}:{self.position}"


class VMDiskKind(models.TextChoices):
    DISK = "disk", "Disk"
    CDROM = "cdrom", "CD-ROM"
    KERNEL = "kernel", "Kernel"
    INITRD = "initrd", "Initrd"


class VMDiskQuerySet(RestrictedQuerySet["VMDisk"]):
    project_path = "vm__project"


class VMDisk(models.Model):
    """One disk of one VM: its copy of an image (overlay or full copy on a system datastore),
    a persistent image written in place, an empty volatile disk, or an attached volume.

    ``path`` is the file on the host; ``backing`` the image an overlay sits on; ``clone``
    says how ``path`` is made at PROLOG (``cow`` overlay, ``copy``, ``empty``, or ``none`` when
    the file already exists: persistent images, volumes, kernels). ``volatile`` files are
    removed when the VM is terminated.
    """

    vm = models.ForeignKey("compute.VirtualMachine", on_delete=models.CASCADE, related_name="disks")
    # only DONE VMs' rows can still point at a deleted image (images.services checks vms_using_image)
    image = models.ForeignKey("images.Image", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    volume = models.ForeignKey("Volume", on_delete=models.PROTECT, null=True, blank=True, related_name="vm_disks")
    datastore = models.ForeignKey(Datastore, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=8, choices=VMDiskKind.choices, default=VMDiskKind.DISK)
    target = models.CharField(max_length=8, blank=True, help_text="guest device: vda, vdb, sdb …")
    path = models.CharField(max_length=1024)
    format = models.CharField(max_length=8, default="qcow2")
    cmdline = models.CharField(max_length=1024, blank=True, help_text="kind kernel: its command line")
    backing = models.CharField(max_length=1024, blank=True)
    backing_format = models.CharField(max_length=8, blank=True)
    clone = models.CharField(max_length=8, default="none", help_text="cow | copy | empty | none")
    size_bytes = models.PositiveBigIntegerField(default=0)
    persistent = models.BooleanField(default=False, help_text="writes go to the image or volume itself")
    volatile = models.BooleanField(default=True, help_text="the file is removed when the VM is terminated")
    state = models.CharField(max_length=10, choices=VMDiskState.choices, default=VMDiskState.ATTACHED)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VMDiskQuerySet.as_manager()

    class Meta:
        ordering = ["vm", "target", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["vm", "target"], condition=~models.Q(target=""), name="uniq_vm_disk_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vm_id}:{self.target or self.kind}"


class Volume(Operated):
    """A persistent block device of a project: a file in a datastore, attachable to one VM.

    ``state`` is the volume's own state (``storage.states``); while an asynchronous operation
    runs ``operation`` names it and ``operation_seq`` (bumped per operation) lets its task know
    it is current (``portal.operations``).
    ``vm`` / ``target`` say where it is attached (its ``VMDisk`` row carries the same).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey("tenants.Project", on_delete=models.PROTECT, related_name="volumes")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    description = models.TextField(blank=True)
    datastore = models.ForeignKey(Datastore, on_delete=models.PROTECT, null=True, blank=True, related_name="volumes")
    size_bytes = models.PositiveBigIntegerField()
    format = models.CharField(max_length=8, choices=VolumeFormat.choices, default=VolumeFormat.QCOW2)
    path = models.CharField(max_length=1024, blank=True)
    source_image = models.ForeignKey("images.Image", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=12, choices=VolumeState.choices, default=VolumeState.CREATING, db_index=True)
    state_message = models.TextField(blank=True)
    previous_state = models.CharField(max_length=12, blank=True)
    vm = models.ForeignKey(
        "compute.VirtualMachine", on_delete=models.SET_NULL, null=True, blank=True, related_name="volumes"
    )
    target = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def size_gb(self) -> int:
        """Whole GiB counted against the ``volume_gb`` quota (rounded up)."""
        return -(-self.size_bytes // GIB)


class VolumeSnapshotQuerySet(RestrictedQuerySet["VolumeSnapshot"]):
    project_path = "volume__project"


class VolumeSnapshot(models.Model):
    """A qcow2 internal snapshot of a volume (``qemu-img snapshot``), named ``tag`` in the file."""

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=63, validators=[name_validator])
    tag = models.CharField(max_length=64)
    ready = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VolumeSnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["volume", "pk"]
        constraints = [models.UniqueConstraint(fields=["volume", "name"], name="uniq_volume_snapshot_name")]

    def __str__(self) -> str:
        return f"{self.volume_id}:{self.name}"
