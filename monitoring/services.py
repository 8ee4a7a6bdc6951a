"""Webhook services: the only writers of ``Webhook`` rows (cloud administrators), each change
validated here and recorded in the audit trail (the secret never is)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.querysets import Actor, is_cloud_admin

from .audit import record_action
from .models import Webhook

FIELDS = frozenset({"name", "url", "event_types", "secret", "enabled", "max_attempts"})
MAX_PATTERNS = 50
MAX_ATTEMPTS = 20


def _require_admin(actor: Actor) -> None:
    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators manage webhooks")


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    text = value.strip()
    if len(text) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    return text


def _url(value: Any) -> str:
    url = _text(value, "url", 500)
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise InvalidInput("url must be an http:// or https:// address", field="url") from None
    return url


def _patterns(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput('event_types is a non-empty list of type patterns, e.g. ["vm.state.*"]', field="event_types")
    if len(value) > MAX_PATTERNS or any(len(v) > 64 for v in value):
        raise InvalidInput(f"event_types: at most {MAX_PATTERNS} patterns of 64 characters", field="event_types")
    return [v.strip() for v in value]


def _apply(hook: Webhook, changes: dict[str, Any]) -> None:
    unknown = set(changes) - FIELDS
    if unknown:
        raise InvalidInput(f"cannot set {', '.join(sorted(unknown))} on a webhook", field=sorted(unknown)[0])
    if "url" in changes:
        hook.url = _url(changes["url"])
    if "name" in changes:
        hook.name = _text(changes["name"] or "", "name", 64) or hook.url[:64]
        if not hook.name:
            raise InvalidInput("name is required", field="name")
    if "event_types" in changes:
        hook.event_types = _patterns(changes["event_types"])
    if changes.get("secret") not in (None, ""):
        secret = _text(changes["secret"], "secret", 64)
        if len(secret) < 16:
            raise InvalidInput("secret is at least 16 characters (or leave it out: one is made)", field="secret")
        hook.secret = secret
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise InvalidInput("enabled must be true or false", field="enabled")
        hook.enabled = changes["enabled"]
    if "max_attempts" in changes:
        n = changes["max_attempts"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ATTEMPTS:
            raise InvalidInput(f"max_attempts must be between 1 and {MAX_ATTEMPTS}", field="max_attempts")
        hook.max_attempts = n


def _lock(actor: Actor, webhook_id: Any) -> Webhook:
    pk = getattr(webhook_id, "pk", webhook_id)
    hook = None
    if str(pk).isdigit():
        hook = Webhook.objects.restrict(actor, "manage").select_for_update().filter(pk=int(pk)).first()
    if hook is None:
        raise NotFound("webhook not found", field="webhook")
    return hook


def _detail(hook: Webhook) -> dict[str, Any]:
    return {"url": hook.url, "event_types": list(hook.event_types), "enabled": hook.enabled}


@transaction.atomic
def create_webhook(
    actor: User, *, url: str, event_types: list[str], name: str = "", ip: str | None = None, **fields: Any
) -> Webhook:
    """Subscribe ``url`` to events whose type matches one of ``event_types`` (``secret``,
    ``enabled``, ``max_attempts`` optional; a secret is made when none is given)."""
    _require_admin(actor)
    hook = Webhook(created_by=actor if getattr(actor, "pk", None) else None)
    _apply(hook, {"url": url, "name": name, "event_types": event_types, **fields})
    hook.save()
    record_action(actor, hook, "create", ip=ip, **_detail(hook))
    return hook


@transaction.atomic
def update_webhook(actor: Actor, webhook_id: Any, *, ip: str | None = None, **changes: Any) -> Webhook:
    _require_admin(actor)
    hook = _lock(actor, webhook_id)
    _apply(hook, changes)
    hook.save()
    record_action(actor, hook, "update", ip=ip, fields=",".join(sorted(changes)), **_detail(hook))
    return hook


@transaction.atomic
def delete_webhook(actor: Actor, webhook_id: Any, *, ip: str | None = None) -> None:
    """Remove a webhook and its delivery log."""
    _require_admin(actor)
    hook = _lock(actor, webhook_id)
    record_action(actor, hook, "delete", ip=ip, url=hook.url)
    hook.delete()
