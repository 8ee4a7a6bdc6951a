"""Clusters (groups of hosts with one placement policy): the only writers of ``Cluster`` rows.
Cloud administrators only."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from monitoring.audit import record_action
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants.querysets import Actor, is_cloud_admin

from ..models import Cluster, host_name_validator
from ..states import PlacementPolicy
from .references import delete_row, refuse_if_used, release_done_vms

FIELDS = frozenset({"name", "placement_policy", "monitor_interval_s", "description"})
MAX_INTERVAL_S = 3600


def _require_admin(actor: Actor) -> None:
    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators manage clusters")


def _apply(cluster: Cluster, changes: dict[str, Any]) -> None:
    unknown = set(changes) - FIELDS
    if unknown:
        raise InvalidInput(f"cannot set {', '.join(sorted(unknown))} on a cluster", field=sorted(unknown)[0])
    if "name" in changes:
        name = changes["name"].strip() if isinstance(changes["name"], str) else ""
        try:
            host_name_validator(name)
        except ValidationError as exc:
            raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
        if Cluster.objects.filter(name=name).exclude(pk=cluster.pk).exists():
            raise Conflict(f"a cluster named {name!r} exists already", field="name")
        cluster.name = name
    if "placement_policy" in changes:
        if changes["placement_policy"] not in PlacementPolicy.values:
            raise InvalidInput(
                f"placement_policy must be one of {', '.join(PlacementPolicy.values)}", field="placement_policy"
            )
        cluster.placement_policy = changes["placement_policy"]
    if "monitor_interval_s" in changes:
        value = changes["monitor_interval_s"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INTERVAL_S:
            raise InvalidInput(f"monitor_interval_s must be between 1 and {MAX_INTERVAL_S}", field="monitor_interval_s")
        cluster.monitor_interval_s = value
    if "description" in changes:
        text = changes["description"] or ""
        if not isinstance(text, str) or len(text) > 4000:
            raise InvalidInput("description is text of at most 4000 characters", field="description")
        cluster.description = text


def _save(cluster: Cluster) -> None:
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin's name is a 400, not a 500
            cluster.save()
    except IntegrityError:
        raise Conflict(f"a cluster named {cluster.name!r} exists already", field="name") from None


def _lock(actor: Actor, cluster_id: Any) -> Cluster:
    pk = getattr(cluster_id, "pk", cluster_id)
    cluster = None
    if str(pk).isdigit():
        cluster = Cluster.objects.restrict(actor, "manage").select_for_update().filter(pk=int(pk)).first()
    if cluster is None:
        raise NotFound("cluster not found", field="cluster")
    return cluster


@transaction.atomic
def create_cluster(actor: Actor, *, name: str, ip: str | None = None, **fields: Any) -> Cluster:
    """A new cluster (``placement_policy``, ``monitor_interval_s``, ``description``)."""
    _require_admin(actor)
    cluster = Cluster()
    _apply(cluster, {"name": name, **fields})
    _save(cluster)
    record_action(actor, cluster, "create", ip=ip, placement_policy=cluster.placement_policy)
    return cluster


@transaction.atomic
def update_cluster(actor: Actor, cluster_id: Any, *, ip: str | None = None, **changes: Any) -> Cluster:
    _require_admin(actor)
    cluster = _lock(actor, cluster_id)
    _apply(cluster, changes)
    _save(cluster)
    record_action(actor, cluster, "update", ip=ip, fields=",".join(sorted(changes)))
    return cluster


@transaction.atomic
def delete_cluster(actor: Actor, cluster_id: Any, *, ip: str | None = None) -> None:
    """Delete a cluster no host, template, live VM or datastore uses (409 naming them)."""
    _require_admin(actor)
    cluster = _lock(actor, cluster_id)
    what = f"cluster {cluster.name}"
    refuse_if_used(cluster, what, field="cluster")
    released = release_done_vms(cluster, "cluster")
    record_action(actor, cluster, "delete", ip=ip, done_vms_released=released)
    delete_row(cluster, what, field="cluster")
