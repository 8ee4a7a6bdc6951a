"""Events (every state change and every action) and the webhooks that follow them."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from tenants.querysets import AdminOnlyQuerySet, RestrictedQuerySet


class EventQuerySet(RestrictedQuerySet["Event"]):
    """Project events for the project's members; events without a project (hosts) for admins."""


class Event(models.Model):
    """Something happened: type (``vm.state.RUNNING``, ``vm.action.poweroff``, ``host.state.ERROR``),
    the object, who did it, and a payload."""

    type = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    object_name = models.CharField(max_length=128, blank=True)
    project = models.ForeignKey("tenants.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor = models.CharField(max_length=150, blank=True, help_text="user name, or 'system'")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.type} {self.object_type}#{self.object_id}"


def _secret() -> str:
    return secrets.token_hex(24)


class Webhook(models.Model):
    """An administrator's subscription: events whose type matches a pattern are POSTed to ``url``,
    signed with HMAC-SHA256 of the body under ``secret`` (header ``X-Nephele-Signature``)."""

    name = models.CharField(max_length=64)
    url = models.URLField(max_length=500)
    event_types = models.JSONField(default=list, help_text='patterns, e.g. ["vm.state.*_FAILURE", "host.state.ERROR"]')
    secret = models.CharField(max_length=64, default=_secret)
    enabled = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(default=6)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryQuerySet(AdminOnlyQuerySet["WebhookDelivery"]):
    pass


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one webhook, with every attempt's outcome."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        RETRYING = "retrying"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True, help_text="one entry per attempt")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]


class Kind(models.IntegerChoices):
    HOST = 1, "host"
    VM = 2, "vm"
    DATASTORE = 3, "datastore"
    NETWORK = 4, "network"


class Metric(models.IntegerChoices):
    CPU_PCT = 1, "cpu_pct"
    MEMORY_MB = 2, "memory_mb"
    NET_RX_BPS = 3, "net_rx_bps"
    NET_TX_BPS = 4, "net_tx_bps"
    DISK_RD_BPS = 5, "disk_rd_bps"
    DISK_WR_BPS = 6, "disk_wr_bps"
    DISK_RD_IOPS = 7, "disk_rd_iops"
    DISK_WR_IOPS = 8, "disk_wr_iops"
    HOST_CPU_LOAD = 10, "host_cpu_load"
    HOST_FREE_MEMORY_MB = 11, "host_free_memory_mb"
    HOST_ALLOC_VCPU = 12, "host_alloc_vcpu"
    HOST_ALLOC_MEMORY_MB = 13, "host_alloc_memory_mb"


class Sample(models.Model):
    """One raw measurement. Append-only: inserted in batches (COPY on PostgreSQL), indexed by
    (kind, object, metric, time) for chart queries and by a BRIN index on time for roll-ups and
    retention (migration 0003)."""

    id = models.BigAutoField(primary_key=True)
    ts = models.DateTimeField()
    kind = models.SmallIntegerField(choices=Kind.choices)
    object_id = models.IntegerField()
    metric = models.SmallIntegerField(choices=Metric.choices)
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["kind", "object_id", "metric", "ts"], name="sample_series_idx")]


class Rollup(models.Model):
    """Samples averaged per minute (resolution 60) or per hour (3600), kept longer than raw ones."""

    id = models.BigAutoField(primary_key=True)
    resolution = models.IntegerField()
    bucket = models.DateTimeField()
    kind = models.SmallIntegerField(choices=Kind.choices)
    object_id = models.IntegerField()
    metric = models.SmallIntegerField(choices=Metric.choices)
    avg = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    n = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "kind", "object_id", "metric", "bucket"], name="rollup_series_uniq"
            )
        ]


class AuditRecord(models.Model):
    """Who did what to which object, when, from where, and with what result.

    Every manager's services write these through ``monitoring.audit.record_action``; the table
    keeps the name it had when the VM manager owned it.
    """

    project = models.ForeignKey("tenants.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    object_name = models.CharField(max_length=128, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    result = models.CharField(max_length=16, default="accepted")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        db_table = "compute_auditrecord"
        ordering = ["-created_at", "-pk"]
