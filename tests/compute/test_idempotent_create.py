"""Creates accept an idempotency key (issue 11, item 3): a client that retries a create — its
answer was lost, or it timed out — gets the VMs of the first request, never a second set."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connection

from compute.models import VirtualMachine
from tenants.quotas import QuotaUsage
from tests.conftest import client_for, requires_postgres


def _body(project: Any, template: Any, **kw: Any) -> dict[str, Any]:
    return {"name": "idem", "project": project.pk, "template": template.pk, "hold": True, "count": 2, **kw}


def _vms_used(project: Any) -> int:
    row = QuotaUsage.objects.filter(project=project, user__isnull=True, resource="vms").first()
    return row.used if row else 0


def test_a_retry_with_the_same_key_returns_the_first_vms(member: Any, project: Any, template: Any) -> None:
    api = client_for(member)
    first = api.post("/api/v1/vms/", _body(project, template, client_token="k-1"), format="json")
    again = api.post("/api/v1/vms/", _body(project, template, client_token="k-1"), format="json")
    assert first.status_code == again.status_code == 202
    assert [vm["id"] for vm in again.json()] == [vm["id"] for vm in first.json()]
    header = api.post("/api/v1/vms/", _body(project, template), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert [vm["id"] for vm in header.json()] == [vm["id"] for vm in first.json()]
    assert VirtualMachine.objects.filter(project=project).count() == 2 and _vms_used(project) == 2
    other = api.post("/api/v1/vms/", _body(project, template, client_token="k-2"), format="json")
    assert other.status_code == 202 and VirtualMachine.objects.filter(project=project).count() == 4


def test_the_same_key_with_other_parameters_is_a_409(member: Any, project: Any, template: Any) -> None:
    api = client_for(member)
    assert api.post("/api/v1/vms/", _body(project, template, client_token="k"), format="json").status_code == 202
    resp = api.post("/api/v1/vms/", _body(project, template, client_token="k", count=3), format="json")
    assert resp.status_code == 409 and resp.json()["field"] == "client_token"
    assert VirtualMachine.objects.filter(project=project).count() == 2


def test_keys_are_per_user_and_bounded(member: Any, project_admin: Any, project: Any, template: Any) -> None:
    assert client_for(member).post("/api/v1/vms/", _body(project, template, client_token="same"), format="json")
    theirs = client_for(project_admin).post(
        "/api/v1/vms/", _body(project, template, client_token="same"), format="json"
    )
    assert theirs.status_code == 202 and VirtualMachine.objects.filter(project=project).count() == 4
    long = client_for(member).post("/api/v1/vms/", _body(project, template, client_token="x" * 65), format="json")
    assert long.status_code == 400 and long.json()["field"] == "client_token"


@requires_postgres()
def test_concurrent_retries_make_one_set_of_vms(
    transactional_db: Any, member: Any, project: Any, template: Any
) -> None:
    codes: list[int] = []
    ids: list[tuple[int, ...]] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        try:
            barrier.wait()
            resp = client_for(member).post(
                "/api/v1/vms/", _body(project, template, client_token="burst"), format="json"
            )
            codes.append(resp.status_code)
            ids.append(tuple(vm["id"] for vm in resp.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [202] * 8 and len(set(ids)) == 1
    assert VirtualMachine.objects.filter(project=project).count() == 2 and _vms_used(project) == 2
