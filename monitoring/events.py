"""Emit events: the one function services call when something happens.

``emit`` writes the Event row in the caller's transaction; after commit it pushes it to the
project's (and the admins') browsers and queues a signed delivery for each webhook whose
patterns match the type.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from django.db import transaction

from portal.events import ADMIN_GROUP, project_group, publish

from .models import Event, Webhook, WebhookDelivery


def emit(event_type: str, obj: Any, *, actor: Any = None, project: Any = None, **payload: Any) -> Event:
    project = project if project is not None else getattr(obj, "project", None)
    event = Event.objects.create(
        type=event_type[:64],
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_name=str(getattr(obj, "name", ""))[:128],
        project=project,
        actor=getattr(actor, "username", "") or "system",
        payload={k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in payload.items()},
    )
    groups = [ADMIN_GROUP] + ([project_group(project.pk)] if project is not None else [])
    publish(groups, {"type": "event.new", "event": event.pk, "project": event.project_id})
    _queue_deliveries(event)
    return event


def matches(patterns: list[str], event_type: str) -> bool:
    return any(fnmatchcase(event_type, p) for p in patterns)


def _queue_deliveries(event: Event) -> None:
    hooks = [h for h in Webhook.objects.filter(enabled=True) if matches(h.event_types, event.type)]
    if not hooks:
        return
    deliveries = WebhookDelivery.objects.bulk_create([WebhookDelivery(webhook=h, event=event) for h in hooks])
    from .tasks import deliver_webhook

    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: [deliver_webhook.delay(pk) for pk in ids])
