"""The time-series store: batched ingest, chart queries, roll-ups and retention; collection
by the host probe; the API and the VM page's series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from compute import services
from compute.tasks import probe_host
from monitoring import store
from monitoring.models import Kind, Metric, Rollup, Sample
from tests.compute.helpers import settle
from tests.conftest import client_for


def _rows(start: datetime, minutes: int, per_minute: int = 6) -> list[tuple[datetime, int, int, int, float]]:
    step = 60 / per_minute
    return [
        (start + timedelta(seconds=i * step), Kind.VM, 7, Metric.CPU_PCT, float(i % per_minute))
        for i in range(minutes * per_minute)
    ]


def test_ingest_query_rollup_and_retention(db: Any, settings: Any) -> None:
    settings.NEPHELE_RAW_RETENTION_S = 3600
    now = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
    start = now - timedelta(hours=3)
    assert store.ingest(_rows(start, 180)) == 1080
    res, points = store.series(Kind.VM, 7, Metric.CPU_PCT, now - timedelta(minutes=30), now)
    assert res == 0 and len(points) == 180
    folded = store.rollup(now)
    assert folded["minutes"] == 180 and folded["hours"] == 3  # 09:00, 10:00 and 11:00 are complete at 12:00:30
    minute = Rollup.objects.get(resolution=60, bucket=(start + timedelta(minutes=1)).replace(second=0))
    assert (minute.avg, minute.min, minute.max, minute.n) == (2.5, 0.0, 5.0, 6)
    res, points = store.series(Kind.VM, 7, Metric.CPU_PCT, now - timedelta(hours=3), now)
    assert res == 60 and len(points) == 179 and points[0][1] == 2.5  # buckets from 09:01 (since = 09:00:30)
    assert Sample.objects.filter(ts__lt=now - timedelta(seconds=3600)).count() == 0  # retention
    again = store.rollup(now)
    assert again["minutes"] == 0 and Rollup.objects.filter(resolution=60).count() == 180  # idempotent


def test_probe_collects_host_and_vm_samples_and_the_api_serves_them(
    member: Any, project: Any, template: Any, make_sim_host: Any, admin_user: Any
) -> None:
    host = make_sim_host("a")
    (vm,) = services.create_vms(member, project=project, template=template, name="m")
    settle()
    assert probe_host(host.pk) == "ok" and probe_host(host.pk) == "ok"
    assert Sample.objects.filter(kind=Kind.VM, object_id=vm.pk, metric=Metric.MEMORY_MB).count() == 2
    assert Sample.objects.filter(kind=Kind.VM, object_id=vm.pk, metric=Metric.CPU_PCT).exists()
    assert Sample.objects.filter(kind=Kind.HOST, object_id=host.pk, metric=Metric.HOST_ALLOC_VCPU).exists()
    data = client_for(member).get(f"/api/v1/vms/{vm.pk}/metrics/?metric=memory_mb&hours=1").json()
    assert data["resolution_s"] == 0 and [p[1] for p in data["points"]] == [1024.0, 1024.0]
    bad = client_for(member).get(f"/api/v1/vms/{vm.pk}/metrics/?metric=nope")
    assert bad.status_code == 400 and "metric" in bad.json()
    host_data = client_for(admin_user).get(f"/api/v1/hosts/{host.pk}/metrics/?metric=host_alloc_vcpu").json()
    assert host_data["points"][-1][1] == 2.0
    c = Client()
    c.force_login(member)
    page = c.get(f"/compute/vms/{vm.pk}/metrics/").json()
    assert len(page["memory_mb"]) == 2
    admin = Client()
    admin.force_login(admin_user)
    assert len(admin.get(f"/compute/hosts/{host.pk}/metrics/").json()["host_alloc_vcpu"]) == 2
    assert b'data-sample="host-' in admin.get(f"/compute/hosts/{host.pk}/").content
    dashboard = c.get("/").content.decode()
    assert "Busiest VMs" in dashboard and f"/compute/vms/{vm.pk}/" in dashboard


@pytest.mark.parametrize(
    "query,field",
    [
        ("hours=0", "hours"),
        ("hours=9601", "hours"),
        ("hours=many", "hours"),
        ("metric=", "metric"),
        ("since=0001-01-01T00:00:00%2B05:00", "since"),  # year 0 in UTC
        ("since=2026-13-01T00:00:00Z", "since"),
    ],
)
def test_a_metrics_query_out_of_bounds_is_a_400_naming_the_parameter(
    member: Any, project: Any, template: Any, query: str, field: str
) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="q", hold=True)
    resp = client_for(member).get(f"/api/v1/vms/{vm.pk}/metrics/?{query}")
    assert resp.status_code == 400 and field in resp.json(), resp.content


def test_a_metrics_since_with_an_odd_offset_is_read_in_utc(member: Any, project: Any, template: Any) -> None:
    """PostgreSQL refuses offsets beyond ±15:59; the API sends it the moment in UTC."""
    (vm,) = services.create_vms(member, project=project, template=template, name="q", hold=True)
    resp = client_for(member).get(f"/api/v1/vms/{vm.pk}/metrics/?since=0027-06-01T10:00:00-23:59")
    assert resp.status_code == 200 and resp.json()["points"] == [], resp.content
