"""Webhooks change only through ``monitoring.services`` (cloud administrators): from the API and
the page, validated there, each change in the audit trail (never the secret)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from monitoring import services
from monitoring.models import AuditRecord, Webhook
from portal.errors import InvalidInput, PermissionDenied
from tests.conftest import client_for


def _audit(hook: Any, action: str) -> AuditRecord | None:
    return AuditRecord.objects.filter(object_type="webhook", object_id=str(hook.pk), action=action).first()


def test_api_create_update_delete_are_audited(admin_user: Any) -> None:
    api = client_for(admin_user)
    resp = api.post(
        "/api/v1/webhooks/",
        {"name": "ops", "url": "https://hooks.example.org/n", "event_types": ["host.state.*"],
         "secret": "a-long-shared-secret-1234"},
        format="json",
    )  # fmt: skip
    assert resp.status_code == 201, resp.content
    hook = Webhook.objects.get()
    assert hook.created_by == admin_user and hook.secret == "a-long-shared-secret-1234"
    created = _audit(hook, "create")
    assert created is not None and created.actor == admin_user and created.source_ip
    assert "a-long-shared-secret-1234" not in str(created.detail)

    resp = api.patch(f"/api/v1/webhooks/{hook.pk}/", {"enabled": False, "max_attempts": 3}, format="json")
    assert resp.status_code == 200 and resp.json()["enabled"] is False
    assert _audit(hook, "update").detail["fields"] == "enabled,max_attempts"
    assert api.delete(f"/api/v1/webhooks/{hook.pk}/").status_code == 204
    assert not Webhook.objects.exists() and _audit(hook, "delete") is not None


def test_bad_input_names_the_field_and_changes_nothing(admin_user: Any) -> None:
    api = client_for(admin_user)
    resp = api.post("/api/v1/webhooks/", {"name": "x", "url": "ftp://nope", "event_types": ["a"]}, format="json")
    assert resp.status_code == 400 and "url" in resp.json()
    hook = services.create_webhook(admin_user, url="http://127.0.0.1:9/", event_types=["x.*"])
    assert hook.name == "http://127.0.0.1:9/"  # named after its url when unnamed
    with pytest.raises(InvalidInput) as exc:
        services.update_webhook(admin_user, hook.pk, event_types=[])
    assert exc.value.field == "event_types"
    with pytest.raises(InvalidInput) as exc:
        services.update_webhook(admin_user, hook.pk, secret="short")
    assert exc.value.field == "secret"
    hook.refresh_from_db()
    assert hook.event_types == ["x.*"] and _audit(hook, "update") is None


def test_only_cloud_admins(member: Any, admin_user: Any) -> None:
    with pytest.raises(PermissionDenied):
        services.create_webhook(member, url="http://127.0.0.1:9/", event_types=["x"])
    hook = services.create_webhook(admin_user, url="http://127.0.0.1:9/", event_types=["x"])
    with pytest.raises(PermissionDenied):
        services.delete_webhook(member, hook.pk)
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_page_registers_through_the_service(admin_user: Any) -> None:
    c = Client()
    c.force_login(admin_user)
    resp = c.post("/webhooks/", {"name": "", "url": "https://h.example.org/x", "event_types": "a.*, b.*"})
    assert resp.status_code == 302
    hook = Webhook.objects.get()
    assert hook.event_types == ["a.*", "b.*"] and _audit(hook, "create") is not None
    bad = c.post("/webhooks/", {"url": "javascript:alert(1)", "event_types": "a"}, follow=True)
    assert b"url must be" in bad.content and Webhook.objects.count() == 1
