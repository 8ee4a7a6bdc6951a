"""The audit trail: the one function every manager's services call to record an action.

A leaf of the dependency graph (it needs only the information manager's own models), so the
storage, network, image and tenancy managers record their actions without importing compute.
"""

from __future__ import annotations

from typing import Any

from portal import bulk

from .events import emit
from .models import AuditRecord


def record_action(
    actor: Any,
    obj: Any,
    action: str,
    *,
    ip: str | None = None,
    result: str = "accepted",
    project: Any = None,
    **detail: Any,
) -> AuditRecord:
    """Write the audit row for an action on ``obj``, and its event."""
    emit(f"{obj._meta.model_name}.action.{action}", obj, actor=actor, project=project, result=result, **detail)
    record = AuditRecord(
        project=project if project is not None else getattr(obj, "project", None),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", "") or "system",
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_name=str(getattr(obj, "name", ""))[:128],
        source_ip=ip,
        result=result,
        detail=detail,
    )
    bulk.add(record)  # now, or with a sweep's chunk (portal.bulk)
    return record
