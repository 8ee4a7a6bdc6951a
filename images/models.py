"""Image repository tables. Nothing here calls the outside world; ``images.services`` writes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from compute.models import name_validator
from storage.models import Datastore
from tenants.models import Project
from tenants.querysets import ShareableQuerySet


class ImageType(models.TextChoices):
    OS = "os", "OS disk"
    CDROM = "cdrom", "CD-ROM"
    DATABLOCK = "datablock", "Data block"
    KERNEL = "kernel", "Kernel"
    RAMDISK = "ramdisk", "Ramdisk"
    CONTEXT = "context", "Context"


class ImageState(models.TextChoices):
    UPLOADING = "uploading", "Uploading"
    CONVERTING = "converting", "Converting"
    READY = "ready", "Ready"
    USED = "used", "Used"
    DISABLED = "disabled", "Disabled"
    ERROR = "error", "Error"


class ImageFormat(models.TextChoices):
    RAW = "raw", "raw"
    QCOW2 = "qcow2", "qcow2"
    VMDK = "vmdk", "VMDK"
    VDI = "vdi", "VDI"
    VHDX = "vhdx", "VHDX"
    ISO = "iso", "ISO 9660"


class Image(models.Model):
    """One image in the repository: a file in an image datastore, with its checked format and sizes.

    ``public`` is the published state (admin approved); sharing with projects or users goes
    through django-guardian per-object grants (``images.services``), as for templates.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="images")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    description = models.TextField(blank=True)
    type = models.CharField(max_length=10, choices=ImageType.choices, default=ImageType.OS)
    datastore = models.ForeignKey(Datastore, on_delete=models.PROTECT, related_name="images")
    path = models.CharField(max_length=1024, blank=True, help_text="the file in the datastore")
    format = models.CharField(max_length=8, choices=ImageFormat.choices, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0, help_text="bytes on disk")
    virtual_size_bytes = models.PositiveBigIntegerField(default=0, help_text="size the guest sees")
    sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=ImageState.choices, default=ImageState.UPLOADING, db_index=True)
    state_message = models.TextField(blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent of the upload or conversion")
    redrives = models.PositiveSmallIntegerField(default=0, help_text="times the sweeper re-queued a stalled conversion")
    persistent = models.BooleanField(default=False, help_text="VMs write to the image itself")
    public = models.BooleanField(default=False, help_text="published for the whole cloud")
    publish_requested = models.BooleanField(default=False, help_text="awaiting a cloud admin's approval")
    expected_sha256 = models.CharField(max_length=64, blank=True, help_text="checksum the uploader declared")
    upload_size_bytes = models.PositiveBigIntegerField(default=0, help_text="size the uploader declared")
    uploaded_bytes = models.PositiveBigIntegerField(default=0, help_text="bytes received so far")
    source_name = models.CharField(max_length=255, blank=True, help_text="the uploaded file's name (display only)")
    derived_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="derived",
        help_text="the image this one was cloned or converted from",
    )  # fmt: skip
    import_detail = models.JSONField(
        default=dict, blank=True, help_text="OVF import: archive, member, template and disk index to convert from"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ShareableQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def visibility(self) -> str:
        """private, shared (per-object grants) or public (published)."""
        if self.public:
            return "public"
        from guardian.models import GroupObjectPermission, UserObjectPermission

        key = {"object_pk": str(self.pk), "content_type__app_label": "images"}
        if GroupObjectPermission.objects.filter(**key).exists() or UserObjectPermission.objects.filter(**key).exists():
            return "shared"
        return "private"
