"""Quotas: limits per project (and optionally per user within a project), with cloud-wide
defaults, checked and consumed in the transaction that creates, resizes or resumes a resource.

Usage rows are locked (``SELECT … FOR UPDATE``) all at once per scope, in one global order —
project rows before user rows, then resource name — so concurrent requests queue behind each
other, never deadlock, and never admit more than the limit; the error names the quota, the
usage, the limit and the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When

from portal.errors import ServiceError


class Resource(models.TextChoices):
    VMS = "vms", "VMs"
    RUNNING_VMS = "running_vms", "Running VMs"
    VCPU = "vcpu", "vCPU"
    MEMORY_MB = "memory_mb", "Memory (MiB)"
    SYSTEM_DISK_GB = "system_disk_gb", "System disk (GiB)"
    VOLUMES = "volumes", "Volumes"
    VOLUME_GB = "volume_gb", "Volume size (GiB)"
    IMAGES = "images", "Images"
    NETWORKS = "networks", "Networks"
    IP_LEASES = "ip_leases", "IP leases"
    PUBLIC_IPS = "public_ips", "Public IPs"
    NIC_MBPS = "nic_mbps", "NIC bandwidth (Mbit/s)"


UNLIMITED = -1
MAX_LIMIT = 10**15  # far beyond any cloud; keeps a typo (an extra digit or ten) from passing


class QuotaExceeded(ServiceError):
    status = 403


class QuotaDefault(models.Model):
    """The cloud-wide limit of a resource for every project without its own (-1: unlimited)."""

    resource = models.CharField(max_length=32, choices=Resource.choices, unique=True)
    limit = models.BigIntegerField(default=UNLIMITED)

    def __str__(self) -> str:
        return f"default {self.resource} ≤ {self.limit}"


class QuotaLimit(models.Model):
    """A project's limit (``user`` empty) or a user's limit within a project."""

    project = models.ForeignKey("tenants.Project", on_delete=models.CASCADE, related_name="quota_limits")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    resource = models.CharField(max_length=32, choices=Resource.choices)
    limit = models.BigIntegerField(default=UNLIMITED)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "resource"], name="uniq_quota_limit"),
            models.UniqueConstraint(
                fields=["project", "resource"], condition=models.Q(user__isnull=True), name="uniq_project_quota_limit"
            ),
        ]


class QuotaUsage(models.Model):
    """What a project (``user`` empty) or a user within it currently holds of a resource."""

    project = models.ForeignKey("tenants.Project", on_delete=models.CASCADE, related_name="quota_usage")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    resource = models.CharField(max_length=32, choices=Resource.choices)
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "resource"], name="uniq_quota_usage"),
            models.UniqueConstraint(
                fields=["project", "resource"], condition=models.Q(user__isnull=True), name="uniq_project_quota_usage"
            ),
            models.CheckConstraint(condition=models.Q(used__gte=0), name="quota_usage_nonneg"),
        ]


@dataclass(frozen=True)
class QuotaLine:
    resource: str
    label: str
    used: int
    limit: int

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100 if self.limit == 0 and self.used else 0
        return min(100, round(100 * self.used / self.limit))


def _lock_rows(project_id: int, user_id: int | None, resources: list[str]) -> dict[tuple[int | None, str], QuotaUsage]:
    """Lock **every** usage row of the project (and of the user in it) in one statement, in the
    cloud's one global order: project rows before user rows, then by resource name.

    Whatever resources a call touches, it takes the whole scope at once, so a transaction that
    consumes twice (a terminate gives back ``running_vms`` and then the sizes) never holds one
    row while waiting for another that a concurrent create holds: the second call finds its
    rows already locked by its own transaction. Quota rows are the last locks a transaction
    takes (after the VM, host, volume or network rows), so they can't form a cycle with those.
    """
    scopes: list[int | None] = [None] if user_id is None else [None, user_id]
    wanted = {(uid, r) for r in Resource.values for uid in scopes}

    def locked() -> list[QuotaUsage]:
        scope = Q(user__isnull=True) if user_id is None else Q(user__isnull=True) | Q(user_id=user_id)
        qs = QuotaUsage.objects.filter(scope, project_id=project_id)
        return list(qs.order_by(F("user_id").asc(nulls_first=True), "resource").select_for_update())

    rows = locked()
    if len({(row.user_id, row.resource) for row in rows} & wanted) < len(wanted):
        have = {(row.user_id, row.resource) for row in rows}
        missing = [
            QuotaUsage(project_id=project_id, user_id=uid, resource=r) for uid, r in sorted(wanted - have, key=str)
        ]
        QuotaUsage.objects.bulk_create(missing, ignore_conflicts=True)
        rows = locked()
    asked = set(resources)
    return {(row.user_id, row.resource): row for row in rows if row.resource in asked}


def consume(project: Any, user: Any, *, check: bool = True, **deltas: int) -> None:
    """Add ``deltas`` to the usage of ``project`` (and of ``user`` in it); with ``check``, refuse
    any positive delta that would pass a limit. Must run inside the caller's transaction."""
    deltas = {r: int(d) for r, d in deltas.items() if d}
    if not deltas:
        return
    assert transaction.get_connection().in_atomic_block, "quotas are consumed inside the resource's transaction"
    user_id = getattr(user, "pk", None)
    rows = _lock_rows(project.pk, user_id, list(deltas))
    if check:
        asked = [r for r, d in deltas.items() if d > 0]
        limits: dict[int | None, dict[str, int]] = {None: _limits(project.pk, None, asked)}
        if user_id is not None:
            limits[user_id] = _limits(project.pk, user_id, asked)
        for (uid, resource), row in sorted(rows.items(), key=lambda kv: (kv[0][0] is not None, kv[0][1])):
            delta = deltas[resource]
            if delta <= 0:
                continue
            limit = limits[uid][resource]
            if limit != UNLIMITED and row.used + delta > limit:
                who = "" if uid is None else f" for user {getattr(user, 'username', uid)}"
                raise QuotaExceeded(
                    f"quota exceeded{who}: {resource} {row.used} of {limit} used, {delta} requested", field=resource
                )
    # every row in one statement (they are locked already)
    QuotaUsage.objects.filter(pk__in=[row.pk for row in rows.values()]).update(
        used=F("used") + Case(*(When(pk=row.pk, then=Value(deltas[res])) for (_u, res), row in rows.items()),
                              output_field=models.BigIntegerField())
    )  # fmt: skip


def release(project: Any, user: Any, **amounts: int) -> None:
    """Give back what ``consume`` took."""
    consume(project, user, check=False, **{r: -a for r, a in amounts.items()})


def usage(project: Any, user: Any = None, resources: Mapping[str, str] | None = None) -> list[QuotaLine]:
    """Usage and limit of every resource, for bars in the UI and the API."""
    user_id = getattr(user, "pk", None)
    used = {
        u.resource: u.used
        for u in QuotaUsage.objects.filter(project=project).filter(
            **({"user__isnull": True} if user_id is None else {"user_id": user_id})
        )
    }
    labels = resources or dict(Resource.choices)
    limits = _limits(project.pk, user_id, list(labels))
    return [QuotaLine(r, str(label), used.get(r, 0), limits[r]) for r, label in labels.items()]


def _limits(project_id: int, user_id: int | None, resources: list[str]) -> dict[str, int]:
    """``_limit`` of several resources in two queries (what a page of quota bars needs)."""
    if not resources:
        return {}
    rows = QuotaLimit.objects.filter(project_id=project_id, user_id=user_id, resource__in=resources)  # type: ignore[misc]
    limits = {row.resource: row.limit for row in rows}
    missing = [r for r in resources if r not in limits]
    if missing and user_id is None:
        limits.update(QuotaDefault.objects.filter(resource__in=missing).values_list("resource", "limit"))
    return {r: limits.get(r, UNLIMITED) for r in resources}


def _check(resource: str, limit: int) -> None:
    if resource not in Resource.values:
        raise ServiceError(f"unknown quota {resource!r}; known: {', '.join(Resource.values)}", field="resource")
    if limit < UNLIMITED:
        raise ServiceError("limit must be -1 (unlimited) or a number ≥ 0", field="limit")
    if limit > MAX_LIMIT:
        raise ServiceError(f"limit must be at most {MAX_LIMIT} (-1: unlimited)", field="limit")


@transaction.atomic
def set_limit(project: Any, resource: str, limit: int, user: Any = None) -> None:
    """Set a project's (or a user's) limit; -1 is unlimited."""
    _check(resource, limit)
    QuotaLimit.objects.update_or_create(project=project, user=user, resource=resource, defaults={"limit": limit})


@transaction.atomic
def set_default(resource: str, limit: int) -> QuotaDefault:
    """Set the cloud-wide limit of ``resource`` for projects without their own; -1 is unlimited."""
    _check(resource, limit)
    row, _ = QuotaDefault.objects.update_or_create(resource=resource, defaults={"limit": limit})
    return row


def defaults() -> list[QuotaLine]:
    """Every resource with its cloud-wide default (``used`` is 0: a default holds nothing)."""
    limits = dict(QuotaDefault.objects.values_list("resource", "limit"))
    return [QuotaLine(r.value, str(r.label), 0, limits.get(r.value, UNLIMITED)) for r in Resource]
