"""The Prometheus endpoint: token-authenticated, in the text exposition format."""

from __future__ import annotations

from typing import Any

from django.test import Client

from compute import services
from tenants import credentials


def test_metrics_with_an_admin_token(
    admin_user: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("sim-a", vcpu=12)
    services.create_vms(member, project=project, template=template, name="x", hold=True)
    _t, secret = credentials.create_token(admin_user, name="prometheus")
    resp = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/plain; version=0.0.4")
    text = resp.content.decode()
    assert 'nephele_host_total_vcpu{host="sim-a",cluster=""} 12.0' in text
    assert 'nephele_host_up{host="sim-a",state="MONITORED"} 1.0' in text
    assert 'nephele_vms{state="HOLD"} 1.0' in text
    assert "# TYPE nephele_scheduler_pending_vms gauge" in text


def test_metrics_refuse_members_and_strangers(member: Any) -> None:
    _t, secret = credentials.create_token(member, name="nope")
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert Client().get("/metrics").status_code == 401
