"""Webhook deliveries: signed POSTs, retried with exponential back-off, every attempt logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from portal.celery import TRANSIENT_ERRORS

from .models import WebhookDelivery

TIMEOUT_S = 10


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(delivery: WebhookDelivery) -> bytes:
    e = delivery.event
    doc = {
        "id": e.pk, "type": e.type, "object": {"type": e.object_type, "id": e.object_id, "name": e.object_name},
        "project": e.project_id, "actor": e.actor, "payload": e.payload, "time": e.created_at.isoformat(),
        "delivery": delivery.pk,
    }  # fmt: skip
    return json.dumps(doc, sort_keys=True).encode()


@shared_task(
    name="monitoring.deliver_webhook",
    bind=True,
    acks_late=True,
    max_retries=None,  # the webhook's max_attempts bounds it
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
)
def deliver_webhook(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    """POST the event; on failure retry after b, 2b, 4b, … seconds (b = NEPHELE_WEBHOOK_BACKOFF_S)
    up to the webhook's max attempts."""
    d = WebhookDelivery.objects.select_related("webhook", "event").filter(pk=delivery_id).first()
    if d is None or d.status in (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED):
        return "done"
    body = body_of(d)
    req = urllib.request.Request(
        d.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Nephele-Webhook/1",
            "X-Nephele-Event": d.event.type,
            "X-Nephele-Delivery": str(d.pk),
            "X-Nephele-Signature": sign(d.webhook.secret, body),
        },
    )
    started = time.monotonic()
    code, error = None, ""
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - admin-registered URL
            code = resp.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        error = str(getattr(exc, "reason", exc))
    d.attempts += 1
    d.response_code = code
    d.log = [*d.log, {"at": timezone.now().isoformat(), "code": code, "error": error,
                      "ms": round(1000 * (time.monotonic() - started))}]  # fmt: skip
    if code is not None and 200 <= code < 300:
        d.status, d.delivered_at, d.last_error, d.next_attempt_at = d.Status.DELIVERED, timezone.now(), "", None
        d.save()
        return "delivered"
    d.last_error = error or f"HTTP {code}"
    if d.attempts >= d.webhook.max_attempts:
        d.status, d.next_attempt_at = d.Status.FAILED, None
        d.save()
        return "failed"
    countdown = settings.NEPHELE_WEBHOOK_BACKOFF_S * 2 ** (d.attempts - 1)
    d.status, d.next_attempt_at = d.Status.RETRYING, timezone.now() + timedelta(seconds=countdown)
    d.save()
    raise self.retry(countdown=countdown)


@shared_task(name="monitoring.rollup")
def rollup() -> dict[str, int]:
    """Fold raw samples into per-minute and per-hour series, and apply retention."""
    from . import store

    return store.rollup()
