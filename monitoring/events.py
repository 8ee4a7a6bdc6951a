"""Emit events: the one function services call when something happens.

``emit`` writes the Event row in the caller's transaction; after commit it pushes it to the
project's (and the admins') browsers and queues a signed delivery for each webhook whose
patterns match the type.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from django.db import transaction

from portal import bulk
from portal.events import ADMIN_GROUP, project_group, publish

from .models import Event, Webhook, WebhookDelivery


def emit(event_type: str, obj: Any, *, actor: Any = None, project: Any = None, **payload: Any) -> Event:
    """Record an event (inserted now, or with a sweep's chunk: ``portal.bulk``); after commit
    it is pushed to browsers and delivered to matching webhooks."""
    project = project if project is not None else getattr(obj, "project", None)
    event = Event(
        type=event_type[:64],
        object_type=obj._meta.model_name,
        object_id=str(obj.pk),
        object_name=str(getattr(obj, "name", ""))[:128],
        project=project,
        actor=getattr(actor, "username", "") or "system",
        payload={k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in payload.items()},
    )
    bulk.add(event, after=_written)
    return event


def _written(events: list[Event]) -> None:
    """The events are in the database: push them and queue their webhook deliveries (one query
    for the webhooks, however many events)."""
    for event in events:
        groups = [ADMIN_GROUP] + ([project_group(event.project_id)] if event.project_id is not None else [])
        publish(groups, {"type": "event.new", "event": event.pk, "project": event.project_id})
    webhooks = list(Webhook.objects.filter(enabled=True))
    if not webhooks:
        return
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=h, event=e) for e in events for h in webhooks if matches(h.event_types, e.type)]
    )
    if not deliveries:
        return
    from .tasks import deliver_webhook

    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: [deliver_webhook.delay(pk) for pk in ids])


def matches(patterns: list[str], event_type: str) -> bool:
    return any(fnmatchcase(event_type, p) for p in patterns)
