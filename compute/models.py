"""Compute tables: clusters, hosts, boot images, VM templates, VMs, placement history, audit.

Nothing here calls the outside world; state changes go through ``compute.services``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from portal.models import Operated
from tenants.models import Project
from tenants.querysets import AdminOnlyQuerySet, RestrictedQuerySet, ShareableQuerySet

from .states import ON_HOST, HostState, PlacementPolicy, RestartPolicy, VMState

name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9 ._'&<>\"-]{0,62}$",
    "Names are 1-63 characters: letters, digits, space and . _ ' & < > \" -, starting with a letter or digit.",
)
host_name_validator = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", "Host names are 1-63 of A-Z a-z 0-9 . _ -")

MAX_VCPU = 256
MAX_MEMORY_MB = 4 * 1024 * 1024  # 4 TiB
MAX_DISK_GB = 64 * 1024  # 64 TiB


class Cluster(models.Model):
    """A group of hosts sharing a placement policy (and later networks and datastores)."""

    name = models.CharField(max_length=63, unique=True, validators=[host_name_validator])
    placement_policy = models.CharField(max_length=16, choices=PlacementPolicy.choices, default=PlacementPolicy.PACKING)
    monitor_interval_s = models.PositiveIntegerField(default=10, help_text="seconds between probes of its hosts")
    description = models.TextField(blank=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Host(models.Model):
    """A hypervisor host, reached by a compute driver at ``uri``."""

    name = models.CharField(max_length=63, unique=True, validators=[host_name_validator])
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="hosts", null=True, blank=True)
    driver = models.CharField(max_length=32, default="libvirt")
    uri = models.CharField(max_length=255, help_text="libvirt URI, e.g. qemu:///system or test:///path/host.xml")
    hypervisor = models.CharField(max_length=16, default="qemu", help_text="qemu, kvm or test")
    state = models.CharField(max_length=16, choices=HostState.choices, default=HostState.INIT)
    state_message = models.TextField(blank=True)
    agent = models.CharField(max_length=63, default="local", help_text="the agent serving this host's queue")
    labels = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0)
    total_vcpu = models.PositiveIntegerField(default=0)
    total_memory_mb = models.PositiveBigIntegerField(default=0)
    total_disk_gb = models.PositiveBigIntegerField(default=0)
    alloc_vcpu = models.PositiveIntegerField(default=0)
    alloc_memory_mb = models.PositiveBigIntegerField(default=0)
    alloc_disk_gb = models.PositiveBigIntegerField(default=0)
    alloc_vms = models.PositiveIntegerField(default=0, help_text="VMs holding a claim on this host")
    free_memory_mb = models.PositiveBigIntegerField(default=0, help_text="measured by the probe")
    cpu_load = models.FloatField(default=0.0, help_text="measured by the probe, 0..1")
    unknown_domains = models.JSONField(default=list, blank=True, help_text="domains found that Nephele did not create")
    failed_probes = models.PositiveIntegerField(default=0, help_text="failed probes in a row")
    last_probe_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # power management through the host's BMC (compute/drivers/power.py; written only by
    # compute/services/power.py)
    power_driver = models.CharField(max_length=16, default="none", help_text="none, redfish or ipmi")
    bmc_address = models.CharField(max_length=255, blank=True, help_text="Redfish URL, or IPMI host[:port]")
    bmc_username = models.CharField(max_length=64, blank=True)
    bmc_password = models.TextField(blank=True, help_text="encrypted (Fernet, key derived from SECRET_KEY)")
    bmc_system = models.CharField(
        max_length=255, blank=True, help_text="Redfish system id or path (empty: the only one)"
    )
    bmc_verify_tls = models.BooleanField(default=True)
    power_state = models.CharField(max_length=8, default="unknown", help_text="on, off or unknown, as the BMC said")
    power_operation = models.CharField(max_length=8, blank=True, help_text="the power action in flight ('' when idle)")
    power_seq = models.PositiveIntegerField(
        default=0, help_text="bumped by each power action; a stale report is ignored"
    )
    power_message = models.TextField(blank=True, help_text="the last power action's error ('' when it succeeded)")
    power_checked_at = models.DateTimeField(null=True, blank=True)
    maintenance_reason = models.CharField(max_length=255, blank=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(alloc_vcpu__gte=0), name="host_alloc_vcpu_nonneg"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue this host's agent consumes."""
        return f"host.{self.pk}"

    @property
    def free_vcpu(self) -> int:
        return max(self.total_vcpu - self.alloc_vcpu, 0)

    @property
    def free_memory_alloc_mb(self) -> int:
        return max(self.total_memory_mb - self.alloc_memory_mb, 0)

    @property
    def free_disk_gb(self) -> int:
        return max(self.total_disk_gb - self.alloc_disk_gb, 0)

    def percent(self, used: int, total: int) -> int:
        return round(100 * used / total) if total else 0

    @property
    def vcpu_percent(self) -> int:
        return self.percent(self.alloc_vcpu, self.total_vcpu)

    @property
    def memory_percent(self) -> int:
        return self.percent(self.alloc_memory_mb, self.total_memory_mb)

    @property
    def disk_percent(self) -> int:
        return self.percent(self.alloc_disk_gb, self.total_disk_gb)


class BootImage(models.Model):
    """A minimal boot source registered by an admin by path on the host (until the image manager lands).

    Either a kernel (+ initrd + command line) booted directly, or a disk file.
    """

    class Kind(models.TextChoices):
        KERNEL = "kernel", "Kernel + initrd"
        DISK = "disk", "Disk file"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="boot_images")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.KERNEL)
    kernel_path = models.CharField(max_length=1024, blank=True)
    initrd_path = models.CharField(max_length=1024, blank=True)
    cmdline = models.CharField(max_length=1024, blank=True)
    disk_path = models.CharField(max_length=1024, blank=True)
    public = models.BooleanField(default=False)

    objects = ShareableQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class VMTemplate(models.Model):
    """An instance type: capacity, boot source and placement requirements."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="vm_templates")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    description = models.TextField(blank=True)
    vcpu = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(MAX_VCPU)])
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(16), MaxValueValidator(MAX_MEMORY_MB)])
    disk_gb = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_DISK_GB)])
    boot_image = models.ForeignKey(BootImage, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    required_labels = models.JSONField(default=dict, blank=True)
    hypervisor = models.CharField(max_length=16, blank=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    public = models.BooleanField(default=False, help_text="usable by every project")
    restart_policy = models.CharField(max_length=16, choices=RestartPolicy.choices, default=RestartPolicy.NEVER)
    ha = models.BooleanField(default=False, help_text="restart on another host when its host fails")
    graphics = models.BooleanField(
        default=False, help_text="a graphical console (VNC on the host's loopback, reached through the portal)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareableQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class VirtualMachine(Operated):
    """A VM: its desired and observed state, where it runs, and the operation in flight
    (``operation`` / ``operation_args`` / ``operation_seq`` from ``portal.operations.Operated``)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="vms")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="vms")
    name = models.CharField(max_length=63, validators=[name_validator])
    template = models.ForeignKey(VMTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="vms")
    boot_image = models.ForeignKey(BootImage, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    vcpu = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField(default=0)
    required_labels = models.JSONField(default=dict, blank=True)
    hypervisor = models.CharField(max_length=16, blank=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    state = models.CharField(max_length=16, choices=VMState.choices, default=VMState.PENDING, db_index=True)
    previous_state = models.CharField(max_length=16, choices=VMState.choices, blank=True)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="vms")
    target_host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    hv_state = models.CharField(max_length=32, blank=True, help_text="the hypervisor's own word for the domain")
    schedule_message = models.CharField(max_length=255, blank=True)
    last_error = models.TextField(blank=True)
    saved_state_path = models.CharField(max_length=1024, blank=True)
    restart_policy = models.CharField(max_length=16, choices=RestartPolicy.choices, default=RestartPolicy.NEVER)
    restart_max = models.PositiveSmallIntegerField(default=3, help_text="restarts allowed within the window")
    restart_window_s = models.PositiveIntegerField(default=600)
    restart_times = models.JSONField(default=list, blank=True, help_text="epoch seconds of recent automatic restarts")
    ha = models.BooleanField(default=False, help_text="restart on another host when its host fails")
    user_data = models.TextField(blank=True, default="", help_text="cloud-init user-data for the VM's seed (≤ 16 KiB)")
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(
        default=0, help_text="bumped by every action and state change; an action may name the version it saw"
    )

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["host", "state"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def domain_name(self) -> str:
        """The hypervisor's name for this VM; the user's name goes into the domain title."""
        return f"{settings.NEPHELE_DOMAIN_PREFIX}-{self.pk}"

    @property
    def holds_capacity(self) -> bool:
        return self.state in ON_HOST


class VMChildQuerySet(RestrictedQuerySet[models.Model]):
    project_path = "vm__project"


class VMPlacement(models.Model):
    """One stay of a VM on a host, with times and the reason it began and ended (for accounting)."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="placements")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="placements")
    start_reason = models.CharField(max_length=32)
    end_reason = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    vcpu = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()

    objects = VMChildQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]


class VMStateChange(models.Model):
    """Every state change of a VM, in order (what the VM's log shows)."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="state_changes")
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]


class CreateRequest(models.Model):
    """An idempotency key (EC2's ClientToken, the ``Idempotency-Key`` header): a retried create
    with the same key returns the VMs the first one made instead of making more. A key names
    one request of one user for ``KEY_TTL_S``; the same key with other parameters is a 409."""

    KEY_TTL_S = 24 * 3600

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=64)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the request's parameters")
    vm_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "token"], name="uniq_create_request_token")]

    def __str__(self) -> str:
        return f"{self.token} → {self.vm_ids}"
