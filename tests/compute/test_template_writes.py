"""VM templates change only through ``compute.services.templates``: from the API, the page and
the admin, every change is validated there, resolves its references through the access gate,
and leaves an audit row. Includes the regressions of issue 12: a tenant's template could point
at another tenant's private boot image, and a revoked share did not stop new VMs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services
from compute.models import BootImage, VirtualMachine, VMTemplate
from compute.services import templates
from monitoring.models import AuditRecord
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants import quotas, sharing
from tests.conftest import client_for
from tests.factories import BootImageFactory, ClusterFactory, ProjectFactory

BODY = {"name": "web", "vcpu": 2, "memory_mb": 1024, "disk_gb": 5}


def _audit(obj: Any, action: str) -> AuditRecord | None:
    return AuditRecord.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk), action=action).first()


def _private_image_of(other_tenant: Any) -> BootImage:
    project = other_tenant.memberships.get().project
    return BootImageFactory(project=project, owner=other_tenant, public=False, name="their-disk")


# -- the API --------------------------------------------------------------------------------------
def test_api_create_update_delete_go_through_the_service_and_are_audited(member: Any, project: Any) -> None:
    api = client_for(member)
    image = BootImageFactory(project=project, owner=member, public=False)
    resp = api.post(
        "/api/v1/templates/",
        {**BODY, "project": project.pk, "boot_image": image.pk, "required_labels": {"zone": "a"},
         "restart_policy": "on-crash", "ha": True},
        format="json",
    )  # fmt: skip
    assert resp.status_code == 201, resp.content
    tpl = VMTemplate.objects.get(pk=resp.json()["id"])
    assert (tpl.owner, tpl.project, tpl.boot_image, tpl.required_labels) == (member, project, image, {"zone": "a"})
    assert (tpl.restart_policy, tpl.ha) == ("on-crash", True)
    record = _audit(tpl, "create")
    assert record is not None and record.actor == member and record.project == project and record.source_ip

    resp = api.patch(f"/api/v1/templates/{tpl.pk}/", {"vcpu": 4, "boot_image": None}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["vcpu"] == 4 and resp.json()["boot_image"] is None
    assert _audit(tpl, "update").detail["fields"] == "boot_image,vcpu"

    assert api.delete(f"/api/v1/templates/{tpl.pk}/").status_code == 204
    assert not VMTemplate.objects.filter(pk=tpl.pk).exists()
    assert _audit(tpl, "delete") is not None


@pytest.mark.parametrize(
    "labels", [["zone=a"], {"zone": 1}, {"zone": None}, {"": "x"}, "zone=a", {"zone": ["a"]}], ids=repr
)
def test_required_labels_must_map_text_to_text(member: Any, project: Any, labels: Any) -> None:
    resp = client_for(member).post(
        "/api/v1/templates/", {**BODY, "project": project.pk, "required_labels": labels}, format="json"
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == "required_labels" and resp.json()["detail"]
    assert not VMTemplate.objects.exists()


def test_patch_with_bad_labels_changes_nothing(member: Any, project: Any, template: Any) -> None:
    resp = client_for(member).patch(
        f"/api/v1/templates/{template.pk}/", {"vcpu": 3, "required_labels": ["a"]}, format="json"
    )
    assert resp.status_code == 400 and resp.json()["field"] == "required_labels"
    template.refresh_from_db()
    assert template.vcpu == 2 and template.required_labels == {}
    assert _audit(template, "update") is None


def test_cross_tenant_private_boot_image_is_refused_on_create(member: Any, project: Any, other_tenant: Any) -> None:
    foreign = _private_image_of(other_tenant)
    resp = client_for(member).post(
        "/api/v1/templates/", {**BODY, "project": project.pk, "boot_image": foreign.pk}, format="json"
    )
    missing = client_for(member).post(
        "/api/v1/templates/", {**BODY, "project": project.pk, "boot_image": foreign.pk + 1000}, format="json"
    )
    assert resp.status_code == 404 and resp.json()["field"] == "boot_image"
    assert (missing.status_code, missing.json()) == (resp.status_code, resp.json())  # foreign looks missing
    assert not VMTemplate.objects.exists()


def test_cross_tenant_private_boot_image_is_refused_on_update(
    member: Any, project: Any, template: Any, other_tenant: Any
) -> None:
    foreign = _private_image_of(other_tenant)
    for method in ("patch", "put"):
        body = (
            {"boot_image": foreign.pk}
            if method == "patch"
            else {**BODY, "project": project.pk, "boot_image": foreign.pk}
        )
        resp = getattr(client_for(member), method)(f"/api/v1/templates/{template.pk}/", body, format="json")
        assert resp.status_code == 404 and resp.json()["field"] == "boot_image", (method, resp.content)
    template.refresh_from_db()
    assert template.boot_image is None and template.name != "web"


def test_shared_and_public_boot_images_may_be_used(member: Any, project: Any, other_tenant: Any) -> None:
    shared, public = _private_image_of(other_tenant), BootImageFactory(public=True)
    sharing.share(other_tenant, BootImage, shared.pk, project_id=project.pk)
    api = client_for(member)
    for image in (shared, public):
        resp = api.post(
            "/api/v1/templates/", {**BODY, "name": f"t{image.pk}", "project": project.pk, "boot_image": image.pk},
            format="json",
        )  # fmt: skip
        assert resp.status_code == 201, resp.content


def test_service_checks(member: Any, viewer: Any, project: Any, template: Any, other_tenant: Any) -> None:
    with pytest.raises(NotFound) as exc:
        templates.create_template(viewer, project=project, **BODY)
    assert exc.value.field == "project"
    with pytest.raises(InvalidInput) as exc:
        templates.create_template(member, project=project, **{**BODY, "vcpu": 0})
    assert exc.value.field == "vcpu"
    with pytest.raises(InvalidInput) as exc:
        templates.create_template(member, project=project, **{**BODY, "name": "bad/name"})
    assert exc.value.field == "name"
    with pytest.raises(InvalidInput) as exc:
        templates.update_template(member, template.pk, restart_policy="sometimes")
    assert exc.value.field == "restart_policy"
    with pytest.raises(InvalidInput) as exc:
        templates.update_template(member, template.pk, hypervisor="Q E M U")
    assert exc.value.field == "hypervisor"
    with pytest.raises(InvalidInput) as exc:
        templates.update_template(member, template.pk, owner=other_tenant)
    assert exc.value.field == "owner"
    with pytest.raises(PermissionDenied) as exc:
        templates.update_template(member, template.pk, public=True)
    assert exc.value.field == "public"
    with pytest.raises(NotFound):  # another tenant's template answers like a missing one
        templates.update_template(other_tenant, template.pk, vcpu=1)
    with pytest.raises(NotFound) as exc:  # moving it into a project the member cannot manage
        templates.update_template(member, template.pk, project=ProjectFactory().pk)
    assert exc.value.field == "project"
    with pytest.raises(NotFound) as exc:
        templates.update_template(member, template.pk, cluster=999999)
    assert exc.value.field == "cluster"
    template.refresh_from_db()
    assert template.vcpu == 2 and not template.public
    assert _audit(template, "update") is None
    cluster = ClusterFactory()
    templates.update_template(member, template.pk, cluster=cluster.pk, hypervisor="qemu")
    template.refresh_from_db()
    assert (template.cluster, template.hypervisor) == (cluster, "qemu")


def test_deleting_a_template_keeps_the_vms_made_from_it(member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="kept", hold=True)
    templates.delete_template(member, template.pk)
    vm.refresh_from_db()
    assert vm.template is None and vm.vcpu == 2


# -- the page -------------------------------------------------------------------------------------
def _page(user: Any, project: Any) -> Client:
    c = Client()
    c.force_login(user)  # the user's one project is the active one
    return c


def test_page_creates_through_the_service(member: Any, project: Any) -> None:
    image = BootImageFactory(project=project, owner=member, public=False)
    resp = _page(member, project).post(
        "/compute/templates/",
        {"name": "paged", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "boot_image": image.pk, "labels": "zone=b"},
    )
    assert resp.status_code == 302, resp.content[:500]
    tpl = VMTemplate.objects.get(name="paged")
    assert (tpl.boot_image, tpl.required_labels, tpl.owner, tpl.restart_policy) == (
        image,
        {"zone": "b"},
        member,
        "never",
    )
    assert _audit(tpl, "create") is not None


def test_page_refuses_a_foreign_private_boot_image(member: Any, project: Any, other_tenant: Any) -> None:
    foreign = _private_image_of(other_tenant)
    resp = _page(member, project).post(
        "/compute/templates/", {"name": "x", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "boot_image": foreign.pk}
    )
    assert resp.status_code == 400 and b"valid choice" in resp.content  # not even offered
    assert not VMTemplate.objects.filter(name="x").exists()


# -- time of use: VM create re-checks the template's boot image --------------------------------------
def test_revoked_boot_image_share_stops_new_vms(member: Any, project: Any, other_tenant: Any) -> None:
    """B's template uses A's shared boot image; A revokes the share; B's next VM is refused."""
    a_project = other_tenant.memberships.get().project
    image = _private_image_of(other_tenant)
    sharing.share(other_tenant, BootImage, image.pk, project_id=project.pk)
    tpl = templates.create_template(member, project=project, boot_image=image.pk, **BODY)
    (first,) = services.create_vms(member, project=project, template=tpl, name="before", hold=True)
    assert first.boot_image == image

    sharing.unshare(other_tenant, BootImage, image.pk, project_id=project.pk)
    before = (VirtualMachine.objects.count(), [(q.resource, q.used) for q in quotas.usage(project)])
    api = client_for(member)
    resp = api.post("/api/v1/vms/", {"name": "after", "project": project.pk, "template": tpl.pk}, format="json")
    assert resp.status_code == 409 and resp.json()["field"] == "template", resp.content
    with pytest.raises(Conflict):
        services.create_vms(member, project=project, template=tpl, name="after", hold=True)
    assert (VirtualMachine.objects.count(), [(q.resource, q.used) for q in quotas.usage(project)]) == before
    assert not VirtualMachine.objects.filter(name="after").exists() and a_project.pk != project.pk
