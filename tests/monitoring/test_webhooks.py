"""Webhooks: signed deliveries through the real Celery worker to a receiver on loopback,
retried with back-off, every attempt logged; only matching event types are sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from compute import services
from monitoring.models import Webhook, WebhookDelivery
from tests.conftest import client_for, wait_for


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """An HTTP endpoint on 127.0.0.1 that fails the first ``fail`` requests with 500."""
    state: dict[str, Any] = {"fail": 0, "got": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["got"].append((dict(self.headers), body))
            code = 500 if state["fail"] > 0 else 204
            state["fail"] -= 1
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/hook"
    yield state
    server.shutdown()


def test_signed_delivery_retried_until_it_succeeds(agent: Any, receiver: dict[str, Any], admin_user: Any, member: Any,
                                                   project: Any, template: Any, settings: Any) -> None:  # fmt: skip
    settings.NEPHELE_WEBHOOK_BACKOFF_S = 0.2
    receiver["fail"] = 2
    resp = client_for(admin_user).post(
        "/api/v1/webhooks/",
        {"name": "ops", "url": receiver["url"], "event_types": ["virtualmachine.state.HOLD"]},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    hook = Webhook.objects.get()
    services.create_vms(member, project=project, template=template, name="watched", hold=True)
    d = wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").first(), timeout=30)
    assert d.attempts == 3 and [a["code"] for a in d.log] == [500, 500, 204]
    headers, body = receiver["got"][-1]
    assert headers["X-Nephele-Event"] == "virtualmachine.state.HOLD"
    expected = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Nephele-Signature"], expected)
    doc = json.loads(body)
    assert doc["object"]["name"] == "watched" and doc["project"] == project.pk
    # only the matching type was sent (no create action, no other states)
    assert {h["X-Nephele-Event"] for h, _ in receiver["got"]} == {"virtualmachine.state.HOLD"}
    shown = client_for(admin_user).get(f"/api/v1/webhooks/{hook.pk}/deliveries/").json()["results"]
    assert shown[0]["status"] == "delivered" and shown[0]["attempts"] == 3


def test_delivery_gives_up_after_max_attempts(agent: Any, receiver: dict[str, Any], member: Any, project: Any,
                                              template: Any, settings: Any) -> None:  # fmt: skip
    settings.NEPHELE_WEBHOOK_BACKOFF_S = 0.1
    receiver["fail"] = 99
    Webhook.objects.create(name="x", url=receiver["url"], event_types=["virtualmachine.state.*"], max_attempts=3)
    services.create_vms(member, project=project, template=template, name="w", hold=True)
    d = wait_for(lambda: WebhookDelivery.objects.filter(status="failed").first(), timeout=30)
    assert d.attempts == 3 and d.last_error == "HTTP 500"


def test_webhooks_are_for_admins_and_validated(member: Any, admin_user: Any) -> None:
    assert client_for(member).get("/api/v1/webhooks/").status_code == 403
    bad = client_for(admin_user).post(
        "/api/v1/webhooks/", {"name": "x", "url": "http://127.0.0.1/", "event_types": []}, format="json"
    )
    assert bad.status_code == 400 and "event_types" in bad.json()
