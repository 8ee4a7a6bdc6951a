"""Storage tables: datastores (libvirt storage pools with a driver) and, later, volumes.

Nothing here calls the outside world; state changes go through ``storage.services``.
"""

from __future__ import annotations

from django.db import models

from compute.models import Cluster, host_name_validator
from portal.querysets import AdminOnlyQuerySet


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
