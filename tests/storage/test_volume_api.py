"""Volumes, VM disks and template disks through the REST API (tasks run eagerly in-process)
and the browser pages."""

from __future__ import annotations

import os
from typing import Any

from django.test import Client

from compute import services as compute
from storage.models import VMDisk, Volume
from tenants import quotas
from tests.conftest import client_for

from .volumes_support import MIB, qemu_info

GIB = 1024**3


def _post(eager: Any, api: Any, url: str, body: dict[str, Any] | None = None) -> Any:
    with eager(execute=True):
        return api.post(url, body or {}, format="json")


def test_volume_life_cycle_through_the_api(eager: Any, member: Any, project: Any, template: Any) -> None:
    api = client_for(member)
    resp = _post(eager, api, "/api/v1/volumes/", {"project": project.pk, "name": "data", "size_bytes": 8 * MIB})
    assert resp.status_code == 202, resp.content
    assert resp.json()["state"] == "creating"  # answered before the task ran
    pk = resp.json()["id"]
    vol = api.get(f"/api/v1/volumes/{pk}/").json()
    assert vol["state"] == "available" and vol["size_bytes"] == 8 * MIB and vol["size_gb"] == 1

    assert _post(eager, api, f"/api/v1/volumes/{pk}/snapshot/", {"name": "s1"}).status_code == 202
    snap = api.get(f"/api/v1/volumes/{pk}/").json()["snapshots"][0]
    assert snap["name"] == "s1" and snap["ready"]
    assert _post(eager, api, f"/api/v1/volumes/{pk}/revert/", {"snapshot": snap["id"]}).status_code == 202
    assert _post(eager, api, f"/api/v1/volumes/{pk}/delete-snapshot/", {"snapshot": snap["id"]}).status_code == 202
    assert _post(eager, api, f"/api/v1/volumes/{pk}/grow/", {"size_bytes": 16 * MIB}).status_code == 202
    assert qemu_info(Volume.objects.get(pk=pk).path)["virtual-size"] == 16 * MIB

    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    resp = _post(eager, api, f"/api/v1/volumes/{pk}/attach/", {"vm": vm.pk, "target": "vdc"})
    assert resp.status_code == 202 and resp.json()["state"] == "in-use" and resp.json()["target"] == "vdc"
    disks = api.get(f"/api/v1/vm-disks/?vm={vm.pk}").json()["results"]
    assert [(d["target"], d["volume"]) for d in disks] == [("vdc", pk)]
    assert [v["id"] for v in api.get(f"/api/v1/volumes/?vm={vm.pk}").json()["results"]] == [pk]
    resp = api.delete(f"/api/v1/volumes/{pk}/")
    assert resp.status_code == 409 and "attached to VM held" in resp.json()["detail"]
    assert _post(eager, api, f"/api/v1/volumes/{pk}/detach/").json()["state"] == "available"

    path = Volume.objects.get(pk=pk).path
    with eager(execute=True):
        assert api.delete(f"/api/v1/volumes/{pk}/").status_code == 202
    assert api.get(f"/api/v1/volumes/{pk}/").status_code == 404 and not os.path.exists(path)


def test_bad_input_is_400_naming_the_field(eager: Any, member: Any, project: Any) -> None:
    api = client_for(member)
    for body, field in [
        ({"project": project.pk, "name": "x!y", "size_bytes": MIB}, "name"),
        ({"project": project.pk, "name": "x", "size_bytes": -1}, "size_bytes"),
        ({"project": project.pk, "name": "x"}, "size_bytes"),
        ({"project": project.pk, "name": "x", "size_bytes": MIB, "format": "vdi"}, "format"),
    ]:
        resp = _post(eager, api, "/api/v1/volumes/", body)
        assert resp.status_code == 400 and field in resp.json(), (body, resp.content)
    assert not Volume.objects.exists()


def test_quota_refusal_is_403_with_the_numbers(eager: Any, member: Any, project: Any) -> None:
    quotas.set_limit(project, "volume_gb", 1)
    api = client_for(member)
    resp = _post(eager, api, "/api/v1/volumes/", {"project": project.pk, "name": "big", "size_bytes": 2 * GIB})
    assert resp.status_code == 403
    assert resp.json() == {"detail": "quota exceeded: volume_gb 0 of 1 used, 2 requested", "field": "volume_gb",
                           "volume_gb": ["quota exceeded: volume_gb 0 of 1 used, 2 requested"]}  # fmt: skip
    assert not Volume.objects.exists()


def test_volume_list_has_no_n_plus_one(
    eager: Any, member: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    api = client_for(member)
    for i in range(6):
        _post(eager, api, "/api/v1/volumes/", {"project": project.pk, "name": f"v{i}", "size_bytes": MIB})
    with django_assert_max_num_queries(8):
        assert api.get("/api/v1/volumes/").json()["count"] == 6


def test_template_disks_api(member: Any, viewer: Any, project: Any, template: Any) -> None:
    api = client_for(member)
    resp = api.post("/api/v1/template-disks/", {"template": template.pk, "size_bytes": MIB}, format="json")
    assert resp.status_code == 201 and resp.json()["position"] == 0
    again = api.post("/api/v1/template-disks/", {"template": template.pk, "size_bytes": 2 * MIB}, format="json")
    assert again.json()["position"] == 1
    listed = client_for(viewer).get(f"/api/v1/template-disks/?template={template.pk}").json()["results"]
    assert [d["size_bytes"] for d in listed] == [MIB, 2 * MIB]
    too_big = api.post("/api/v1/template-disks/", {"template": template.pk, "size_bytes": 11 * GIB}, format="json")
    assert too_big.status_code == 400 and too_big.json()["field"] == "size_bytes"
    assert api.delete(f"/api/v1/template-disks/{resp.json()['id']}/").status_code == 204
    (vm,) = compute.create_vms(member, project=project, template=template, name="one", hold=True)
    assert [d.size_bytes for d in VMDisk.objects.filter(vm=vm)] == [2 * MIB]


def test_schema_describes_the_volume_endpoints(client: Any) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/volumes/{id}/attach/", "/api/v1/volumes/{id}/delete-snapshot/",
                 "/api/v1/vm-disks/{id}/save-as-image/", "/api/v1/template-disks/"):  # fmt: skip
        assert path in schema


# --------------------------------------------------------------------------------------------
# pages
# --------------------------------------------------------------------------------------------
def _browser(user: Any, project: Any) -> Client:
    c = Client()
    c.force_login(user)
    c.post("/project/switch/", {"project": project.pk})
    return c


def test_volume_pages(eager: Any, member: Any, project: Any, template: Any) -> None:
    quotas.set_limit(project, "volume_gb", 5)
    c = _browser(member, project)
    with eager(execute=True):
        resp = c.post("/storage/volumes/create/", {"project": project.pk, "name": "ui-vol", "size_mb": 10})
    assert resp.status_code == 302
    vol = Volume.objects.get(name="ui-vol")
    page = c.get("/storage/volumes/").content.decode()
    assert "ui-vol" in page and 'data-testid="quota-volume_gb">1 / 5' in page
    bad = c.post("/storage/volumes/create/", {"project": project.pk, "name": "x", "size_mb": "lots"}, follow=True)
    assert "size_mb must be a whole number of MiB" in bad.content.decode()

    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    with eager(execute=True):
        c.post(f"/storage/vms/{vm.pk}/attach/", {"volume": vol.pk})
    vm_page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert "Storage" in vm_page and "volume ui-vol" in vm_page and "Detach" in vm_page
    detail = c.get(f"/storage/volumes/{vol.pk}/").content.decode()
    assert "Detach from held" in detail
    with eager(execute=True):
        resp = c.post(f"/storage/volumes/{vol.pk}/action/", {"action": "delete"}, follow=True)
    assert "attached to VM held" in resp.content.decode()
    with eager(execute=True):
        c.post(f"/storage/volumes/{vol.pk}/action/", {"action": "detach"})
        c.post(f"/storage/volumes/{vol.pk}/action/", {"action": "snapshot", "name": "snap1"})
    assert "snap1" in c.get(f"/storage/volumes/{vol.pk}/").content.decode()


def test_viewer_sees_pages_without_buttons(eager: Any, member: Any, viewer: Any, project: Any) -> None:
    from storage.services import volumes as svc

    with eager(execute=True):
        vol = svc.create_volume(member, project=project, name="seen", size_bytes=MIB)
    c = _browser(viewer, project)
    assert "New volume" not in c.get("/storage/volumes/").content.decode()
    detail = c.get(f"/storage/volumes/{vol.pk}/").content.decode()
    assert "seen" in detail and "Take snapshot" not in detail


def test_template_disks_page(member: Any, viewer: Any, project: Any, template: Any) -> None:
    c = _browser(member, project)
    assert "Add a disk" in c.get(f"/storage/templates/{template.pk}/disks/").content.decode()
    c.post(f"/storage/templates/{template.pk}/disks/", {"size_mb": 4})
    td = template.disks.get()
    assert td.size_bytes == 4 * MIB
    page = _browser(viewer, project).get(f"/storage/templates/{template.pk}/disks/").content.decode()
    assert "4.0 MiB" in page and "Add a disk" not in page
    refused = _browser(viewer, project).post(f"/storage/template-disks/{td.pk}/remove/", follow=True)
    assert "template disk not found" in refused.content.decode() and template.disks.exists()
    c.post(f"/storage/template-disks/{td.pk}/remove/")
    assert not template.disks.exists()
