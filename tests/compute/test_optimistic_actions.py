"""Read-modify-write actions carry the version the client saw (issue 11, item 9): two clients
that read the same VM and both resize it — the second gets 409 naming ``version``, not a
silent last-one-wins. Through the API (``version`` or ``If-Match``) and the resize form."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connection

from compute import services
from compute.models import VirtualMachine
from tests.conftest import client_for, requires_postgres


def _vm(member: Any, project: Any, template: Any) -> VirtualMachine:
    (vm,) = services.create_vms(member, project=project, template=template, name="r", hold=True)
    return vm


def test_the_second_resize_from_the_same_read_gets_409(member: Any, project: Any, template: Any) -> None:
    vm = _vm(member, project, template)
    api = client_for(member)
    seen = api.get(f"/api/v1/vms/{vm.pk}/")
    version = seen.json()["version"]
    assert seen["ETag"] == f'"{version}"'
    first = api.post(f"/api/v1/vms/{vm.pk}/action/", {"action": "resize", "vcpu": 3, "version": version}, format="json")
    assert first.status_code == 202 and first.json()["vcpu"] == 3 and first.json()["version"] > version
    second = api.post(
        f"/api/v1/vms/{vm.pk}/action/", {"action": "resize", "vcpu": 4}, format="json", HTTP_IF_MATCH=f'"{version}"'
    )
    assert second.status_code == 409
    assert second.json()["field"] == "version" and "changed since version" in second.json()["detail"]
    vm.refresh_from_db()
    assert vm.vcpu == 3
    # without a version the action is not guarded (compatible with clients that don't send one)
    assert api.post(f"/api/v1/vms/{vm.pk}/action/", {"action": "resize", "vcpu": 2}, format="json").status_code == 202


def test_a_bad_if_match_is_a_400_naming_version(member: Any, project: Any, template: Any) -> None:
    vm = _vm(member, project, template)
    resp = client_for(member).post(
        f"/api/v1/vms/{vm.pk}/action/", {"action": "resize", "vcpu": 3}, format="json", HTTP_IF_MATCH="nonsense"
    )
    assert resp.status_code == 400 and resp.json()["field"] == "version"


def test_the_resize_form_carries_the_version(member: Any, project: Any, template: Any) -> None:
    from django.test import Client

    vm = _vm(member, project, template)
    browser = Client()
    browser.force_login(member)
    page = browser.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert f'name="version" value="{vm.version}"' in page
    body = {"action": "resize", "vcpu": "3", "memory_mb": "1024", "version": str(vm.version)}
    assert browser.post(f"/compute/vms/{vm.pk}/action/", body, HTTP_HX_REQUEST="true").status_code == 200
    resp = browser.post(f"/compute/vms/{vm.pk}/action/", {**body, "vcpu": "4"}, HTTP_HX_REQUEST="true")
    assert "changed since version" in resp.content.decode()
    vm.refresh_from_db()
    assert vm.vcpu == 3


@requires_postgres()
def test_concurrent_resizes_from_one_read_admit_exactly_one(
    transactional_db: Any, member: Any, project: Any, template: Any
) -> None:
    vm = _vm(member, project, template)
    codes: list[int] = []
    barrier = threading.Barrier(6)

    def resize(vcpu: int) -> None:
        try:
            barrier.wait()
            body = {"action": "resize", "vcpu": vcpu, "version": vm.version}
            codes.append(client_for(member).post(f"/api/v1/vms/{vm.pk}/action/", body, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=resize, args=(n,)) for n in range(2, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] + [409] * 5
