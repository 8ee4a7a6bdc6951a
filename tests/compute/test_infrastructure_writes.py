"""Boot images and clusters change only through their services (cloud administrators), audited;
a delete of one still in use is a 409 naming who uses it, never a 500 ``ProtectedError``. The
Django admin shows them read-only and deletes through the services."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services
from compute.models import BootImage, Cluster, VirtualMachine
from compute.services import bootimages, clusters
from compute.states import VMState as S
from monitoring.models import AuditRecord
from portal.errors import Conflict, InvalidInput, PermissionDenied
from tests.conftest import client_for
from tests.factories import BootImageFactory, ClusterFactory, VMTemplateFactory

from .helpers import act


def _audit(obj: Any, action: str) -> AuditRecord | None:
    return AuditRecord.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk), action=action).first()


# -- boot images ----------------------------------------------------------------------------------
def test_boot_image_api_writes_are_audited(admin_user: Any, project: Any) -> None:
    api = client_for(admin_user)
    resp = api.post(
        "/api/v1/boot-images/",
        {"project": project.pk, "name": "deb", "kind": "disk", "disk_path": "/var/lib/nephele/deb.qcow2"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    img = BootImage.objects.get(pk=resp.json()["id"])
    assert img.owner == admin_user and _audit(img, "create").project == project
    resp = api.patch(f"/api/v1/boot-images/{img.pk}/", {"public": True, "cmdline": "quiet"}, format="json")
    assert resp.status_code == 200 and resp.json()["public"] is True
    assert _audit(img, "update").detail["fields"] == "cmdline,public"
    assert api.delete(f"/api/v1/boot-images/{img.pk}/").status_code == 204
    assert not BootImage.objects.filter(pk=img.pk).exists() and _audit(img, "delete") is not None


def test_boot_image_input_is_checked(admin_user: Any, member: Any, project: Any) -> None:
    api = client_for(admin_user)
    resp = api.post(
        "/api/v1/boot-images/", {"project": project.pk, "name": "k", "kernel_path": "vmlinuz"}, format="json"
    )
    assert resp.status_code == 400 and resp.json()["field"] == "kernel_path"
    resp = api.post("/api/v1/boot-images/", {"project": 999999, "name": "k"}, format="json")
    assert resp.status_code == 404 and resp.json()["field"] == "project"
    with pytest.raises(PermissionDenied):
        bootimages.create_boot_image(member, project=project, name="mine")
    assert not BootImage.objects.exists()


def test_deleting_a_boot_image_in_use_is_a_409_naming_the_users(admin_user: Any, member: Any, project: Any) -> None:
    img = BootImageFactory(project=project, owner=admin_user, name="golden")
    tpl = VMTemplateFactory(project=project, owner=member, name="uses-golden", boot_image=img)
    resp = client_for(admin_user).delete(f"/api/v1/boot-images/{img.pk}/")
    assert resp.status_code == 409 and resp.json()["field"] == "boot_image"
    assert "uses-golden" in resp.json()["detail"]

    (vm,) = services.create_vms(member, project=project, template=tpl, name="booted", hold=True)
    tpl.boot_image = None
    tpl.save()
    with pytest.raises(Conflict, match=r"booted \(#"):
        bootimages.delete_boot_image(admin_user, img.pk)
    assert BootImage.objects.filter(pk=img.pk).exists() and _audit(img, "delete") is None

    act(member, vm, "terminate", hard=True)  # a DONE VM is history: it does not keep the image
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.DONE
    bootimages.delete_boot_image(admin_user, img.pk)
    assert VirtualMachine.objects.get(pk=vm.pk).boot_image is None
    assert _audit(img, "delete").detail["done_vms_released"] == 1


# -- clusters -------------------------------------------------------------------------------------
def test_cluster_api_writes_are_audited(admin_user: Any) -> None:
    api = client_for(admin_user)
    resp = api.post("/api/v1/clusters/", {"name": "rack-1", "placement_policy": "striping"}, format="json")
    assert resp.status_code == 201, resp.content
    cluster = Cluster.objects.get(name="rack-1")
    assert cluster.placement_policy == "striping" and _audit(cluster, "create").actor == admin_user
    resp = api.put(f"/api/v1/clusters/{cluster.pk}/", {"name": "rack-2", "description": "row B"}, format="json")
    assert resp.status_code == 200 and resp.json()["name"] == "rack-2"
    assert _audit(cluster, "update") is not None
    assert api.post("/api/v1/clusters/", {"name": "rack-2"}, format="json").status_code == 409  # the name is taken
    assert api.delete(f"/api/v1/clusters/{cluster.pk}/").status_code == 204
    assert _audit(cluster, "delete") is not None and not Cluster.objects.exists()


def test_deleting_a_cluster_in_use_is_a_409_naming_the_users(
    admin_user: Any, member: Any, project: Any, make_sim_host: Any
) -> None:
    cluster = ClusterFactory(name="rack-9")
    host = make_sim_host("h-rack9", cluster=cluster)
    resp = client_for(admin_user).delete(f"/api/v1/clusters/{cluster.pk}/")
    assert resp.status_code == 409 and "h-rack9" in resp.json()["detail"] and resp.json()["field"] == "cluster"
    services.delete_host(admin_user, host.pk)
    tpl = VMTemplateFactory(project=project, owner=member, name="pinned", cluster=cluster)
    with pytest.raises(Conflict, match="pinned"):
        clusters.delete_cluster(admin_user, cluster.pk)
    tpl.delete()
    clusters.delete_cluster(admin_user, cluster.pk)
    assert not Cluster.objects.filter(pk=cluster.pk).exists()


def test_cluster_input_is_checked(admin_user: Any, member: Any) -> None:
    with pytest.raises(InvalidInput) as exc:
        clusters.create_cluster(admin_user, name="bad name")
    assert exc.value.field == "name"
    with pytest.raises(InvalidInput) as exc:
        clusters.create_cluster(admin_user, name="ok", placement_policy="random")
    assert exc.value.field == "placement_policy"
    with pytest.raises(InvalidInput) as exc:
        clusters.create_cluster(admin_user, name="ok", monitor_interval_s=0)
    assert exc.value.field == "monitor_interval_s"
    with pytest.raises(PermissionDenied):
        clusters.create_cluster(member, name="ok")
    assert not Cluster.objects.exists()


# -- the Django admin -------------------------------------------------------------------------------
def test_admin_is_read_only_and_deletes_through_the_services(admin_user: Any, member: Any, project: Any) -> None:
    img = BootImageFactory(project=project, owner=admin_user)
    VMTemplateFactory(project=project, owner=member, boot_image=img, name="needs-it")
    cluster = ClusterFactory()
    c = Client()
    c.force_login(admin_user)
    for path in ("/admin/compute/cluster/", "/admin/compute/bootimage/", "/admin/compute/vmtemplate/"):
        assert c.get(path).status_code == 200
        assert c.get(path + "add/").status_code == 403
    assert c.post(f"/admin/compute/cluster/{cluster.pk}/change/", {"name": "renamed"}).status_code == 403
    resp = c.post("/admin/compute/bootimage/", {"action": "delete_through_service", "_selected_action": [img.pk]},
                  follow=True)  # fmt: skip
    assert resp.status_code == 200 and b"needs-it" in resp.content  # the service's 409, as a message
    assert BootImage.objects.filter(pk=img.pk).exists()
    c.post("/admin/compute/cluster/", {"action": "delete_through_service", "_selected_action": [cluster.pk]})
    assert not Cluster.objects.filter(pk=cluster.pk).exists() and _audit(cluster, "delete") is not None
