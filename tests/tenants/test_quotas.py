"""Quotas: checked and consumed with the resource, released when it goes away, exact under
concurrency."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from tenants import quotas
from tenants.quotas import QuotaDefault, QuotaUsage
from tests.compute.helpers import act, settle
from tests.conftest import client_for, requires_postgres


def used(project: Any, resource: str) -> int:
    row = QuotaUsage.objects.filter(project=project, user__isnull=True, resource=resource).first()
    return row.used if row else 0


def test_create_consumes_and_terminate_releases(member: Any, project: Any, template: Any, make_sim_host: Any) -> None:
    make_sim_host("a")
    vms = services.create_vms(member, project=project, template=template, name="w", count=2)
    settle()
    assert (used(project, "vms"), used(project, "vcpu"), used(project, "memory_mb")) == (2, 4, 2048)
    assert used(project, "running_vms") == 2
    act(member, vms[0], "poweroff")
    settle()
    assert used(project, "running_vms") == 1
    for vm in vms:
        act(member, vm, "terminate", hard=True)
    settle()
    assert [used(project, r) for r in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb")] == [0] * 5


def test_exceeding_names_quota_usage_limit_and_request(member: Any, project: Any, template: Any) -> None:
    quotas.set_limit(project, "vcpu", 5)
    services.create_vms(member, project=project, template=template, name="a", count=2)  # 4 vCPU
    resp = client_for(member).post(
        "/api/v1/vms/", {"name": "b", "project": project.pk, "template": template.pk}, format="json"
    )
    assert resp.status_code == 403
    assert resp.json() == {
        "detail": "quota exceeded: vcpu 4 of 5 used, 2 requested",
        "field": "vcpu",
        "vcpu": ["quota exceeded: vcpu 4 of 5 used, 2 requested"],
    }
    assert VirtualMachine.objects.count() == 2 and used(project, "vms") == 2


def test_cloud_default_and_per_user_limits(member: Any, project_admin: Any, project: Any, template: Any) -> None:
    QuotaDefault.objects.create(resource="vms", limit=3)
    quotas.set_limit(project, "vms", 1, user=member)
    services.create_vms(member, project=project, template=template, name="m")
    with pytest.raises(quotas.QuotaExceeded, match="for user member: vms 1 of 1 used"):
        services.create_vms(member, project=project, template=template, name="m2")
    services.create_vms(project_admin, project=project, template=template, name="p", count=2)
    with pytest.raises(quotas.QuotaExceeded, match="quota exceeded: vms 3 of 3 used, 1 requested"):
        services.create_vms(project_admin, project=project, template=template, name="p3")


def test_resume_checks_running_quota(member: Any, project: Any, template: Any, make_sim_host: Any) -> None:
    make_sim_host("a")
    quotas.set_limit(project, "running_vms", 1)
    (a,) = services.create_vms(member, project=project, template=template, name="a")
    settle()
    act(member, a, "poweroff")
    settle()
    (b,) = services.create_vms(member, project=project, template=template, name="b")
    settle()
    with pytest.raises(quotas.QuotaExceeded, match="running_vms 1 of 1 used, 1 requested"):
        act(member, a, "resume")
    assert VirtualMachine.objects.get(pk=a.pk).state == S.POWEROFF


def test_resize_checks_the_difference(member: Any, project: Any, template: Any) -> None:
    quotas.set_limit(project, "memory_mb", 2048)
    (vm,) = services.create_vms(member, project=project, template=template, name="a", hold=True)
    with pytest.raises(quotas.QuotaExceeded, match="memory_mb 1024 of 2048 used, 2048 requested"):
        act(member, vm, "resize", memory_mb=3072)
    act(member, vm, "resize", memory_mb=2048)
    assert used(project, "memory_mb") == 2048


def test_quota_api(member: Any, admin_user: Any, project: Any) -> None:
    assert (
        client_for(member).post(f"/api/v1/projects/{project.pk}/quotas/", {"resource": "vms", "limit": 5}).status_code
        == 403
    )
    resp = client_for(admin_user).post(f"/api/v1/projects/{project.pk}/quotas/", {"resource": "vms", "limit": 5})
    assert resp.status_code == 200
    line = next(
        q for q in client_for(member).get(f"/api/v1/projects/{project.pk}/quotas/").json() if q["resource"] == "vms"
    )
    assert (line["used"], line["limit"]) == (0, 5)


@requires_postgres()
@pytest.mark.parametrize("attempt", range(5))
def test_forty_concurrent_creates_against_a_limit_of_ten_admit_exactly_ten(
    attempt: int, transactional_db: Any, member: Any, project: Any, template: Any
) -> None:
    quotas.set_limit(project, "vms", 10)
    codes: list[int] = []
    barrier = threading.Barrier(40)

    def create(i: int) -> None:
        try:
            barrier.wait()
            body = {"name": f"vm-{i}", "project": project.pk, "template": template.pk, "hold": True}
            codes.append(client_for(member).post("/api/v1/vms/", body, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] * 10 + [403] * 30
    assert VirtualMachine.objects.filter(project=project).count() == 10
    assert used(project, "vms") == 10
