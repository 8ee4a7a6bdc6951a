"""Organizations, projects, role grants and quota limits change only through
``tenants.services``, each change audited: from the API, the identity page, the Django admin
(read-only) and LDAP provisioning at login (the system acts)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from monitoring.models import AuditRecord
from portal.errors import Conflict, PermissionDenied
from tenants import services as tenancy
from tenants.ldap import sync_roles
from tenants.models import Membership, Organization, OrgMembership, Project
from tenants.quotas import QuotaLimit
from tests.conftest import client_for
from tests.factories import OrganizationFactory, ProjectFactory, UserFactory


def _audit(obj: Any, action: str) -> AuditRecord | None:
    return AuditRecord.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk), action=action).first()


# -- organizations ------------------------------------------------------------------------------
def test_organization_life_cycle_through_the_api_is_audited(admin_user: Any) -> None:
    api = client_for(admin_user)
    resp = api.post("/api/v1/organizations/", {"name": "acme", "enabled": False}, format="json")
    assert resp.status_code == 201, resp.content
    org = Organization.objects.get(name="acme")
    assert org.enabled is False and _audit(org, "create").actor == admin_user
    resp = api.patch(f"/api/v1/organizations/{org.pk}/", {"enabled": True, "description": "ours"}, format="json")
    assert resp.status_code == 200
    assert _audit(org, "update") is not None and _audit(org, "enable") is not None
    assert api.delete(f"/api/v1/organizations/{org.pk}/").status_code == 204
    assert not Organization.objects.filter(pk=org.pk).exists()
    deleted = _audit(org, "delete")
    assert deleted is not None and deleted.actor == admin_user and deleted.source_ip


def test_posting_enabled_is_refused_not_a_500(member: Any) -> None:
    """Issue 12: POST organizations/ with ``enabled`` answered 500 (before the admin check)."""
    resp = client_for(member).post("/api/v1/organizations/", {"name": "x", "enabled": True}, format="json")
    assert resp.status_code == 403
    assert not Organization.objects.filter(name="x").exists()


def test_organization_delete_is_refused_while_it_has_projects(admin_user: Any, project: Any, member: Any) -> None:
    org = project.organization
    resp = client_for(admin_user).delete(f"/api/v1/organizations/{org.pk}/")
    assert resp.status_code == 409 and project.name in resp.json()["detail"]
    with pytest.raises(PermissionDenied):
        tenancy.delete_organization(member, org.pk)
    assert Organization.objects.filter(pk=org.pk).exists() and _audit(org, "delete") is None


def test_only_cloud_admins_enable_organizations(db: Any) -> None:
    org = OrganizationFactory()
    boss = UserFactory(username="boss")
    OrgMembership.objects.create(user=boss, organization=org, role="admin")
    resp = client_for(boss).patch(f"/api/v1/organizations/{org.pk}/", {"enabled": False}, format="json")
    assert resp.status_code == 403 and resp.json()["field"] == "enabled"
    org.refresh_from_db()
    assert org.enabled and _audit(org, "update") is None


def test_renaming_to_a_taken_name_is_a_conflict(admin_user: Any) -> None:
    OrganizationFactory(name="taken")
    org = OrganizationFactory(name="mine")
    with pytest.raises(Conflict) as exc:
        tenancy.update_organization(admin_user, org.pk, name="taken")
    assert exc.value.field == "name"


# -- roles and quotas ---------------------------------------------------------------------------------
def test_role_grants_and_revocations_are_audited(admin_user: Any, project: Any) -> None:
    UserFactory(username="newbie")
    api = client_for(admin_user)
    url = f"/api/v1/projects/{project.pk}/members/"
    assert api.post(url, {"user": "newbie", "role": "viewer"}, format="json").status_code == 200
    assert api.post(url, {"user": "newbie", "role": "viewer"}, format="json").status_code == 200  # no change
    assert api.post(url, {"user": "newbie", "role": None}, format="json").status_code == 200
    actions = list(
        AuditRecord.objects.filter(object_type="project", object_id=str(project.pk)).order_by("pk")
        .values_list("action", "detail__role")
    )  # fmt: skip
    assert actions == [("grant-role", "viewer"), ("revoke-role", "viewer")]
    assert not Membership.objects.filter(user__username="newbie").exists()

    org = project.organization
    api.post(f"/api/v1/organizations/{org.pk}/roles/", {"user": "newbie", "role": "admin"}, format="json")
    api.post(f"/api/v1/organizations/{org.pk}/roles/", {"user": "newbie", "role": None}, format="json")
    assert _audit(org, "grant-role") is not None and _audit(org, "revoke-role") is not None
    assert not OrgMembership.objects.exists()


def test_quota_limits_are_set_through_the_service(admin_user: Any, project: Any) -> None:
    resp = client_for(admin_user).post(
        f"/api/v1/projects/{project.pk}/quotas/", {"resource": "vcpu", "limit": 8}, format="json"
    )
    assert resp.status_code == 200
    assert QuotaLimit.objects.get(project=project, resource="vcpu").limit == 8
    record = _audit(project, "set-quota")
    assert record is not None and record.detail["resource"] == "vcpu" and record.detail["limit"] == 8


def test_identity_page_writes_are_audited(admin_user: Any) -> None:
    c = Client()
    c.force_login(admin_user)
    c.post("/identity/action/", {"what": "org-create", "name": "paged"})
    org = Organization.objects.get(name="paged")
    c.post("/identity/action/", {"what": "project-create", "organization": org.pk, "name": "p"})
    project = Project.objects.get(organization=org, name="p")
    assert _audit(org, "create").source_ip and _audit(project, "create") is not None


def test_django_admin_is_read_only(admin_user: Any, project: Any) -> None:
    c = Client()
    c.force_login(admin_user)
    assert c.get("/admin/tenants/project/").status_code == 200
    assert c.get(f"/admin/tenants/project/{project.pk}/change/").status_code == 200
    assert c.get("/admin/tenants/organization/add/").status_code == 403
    c.post(f"/admin/tenants/organization/{project.organization_id}/delete/", {"post": "yes"})
    assert Organization.objects.filter(pk=project.organization_id).exists()


# -- LDAP provisioning at login -------------------------------------------------------------------------
def test_ldap_provisioning_goes_through_the_services(db: Any, settings: Any) -> None:
    settings.NEPHELE_LDAP_GROUP_ROLES = {
        "cn=devs,ou=groups,dc=example": [
            ["acme", "web", "member"],
            ["acme", "db", "viewer"],
            ["x" * 200, "p", "member"],
        ]
    }
    alice = UserFactory(username="alice")
    granted = sync_roles(alice, {"CN=devs,ou=groups,dc=example"})
    assert granted == ["member@acme/web", "viewer@acme/db"]  # the refused mapping is skipped, logged
    org = Organization.objects.get(name="acme")
    web = Project.objects.get(organization=org, name="web")
    assert Membership.objects.get(user=alice, project=web).role == "member"
    created = _audit(org, "create")
    assert created is not None and created.actor is None and created.actor_name == "system"
    grant = _audit(web, "grant-role")
    assert grant.detail["user"] == "alice" and grant.detail["source"] == "ldap"
    assert alice.groups.filter(name=f"project-{web.pk}").exists()  # guardian shares reach her

    rows = AuditRecord.objects.count()
    assert sync_roles(alice, {"cn=devs,ou=groups,dc=example"}) == granted  # the next login
    assert AuditRecord.objects.count() == rows  # nothing changed, nothing recorded
    assert (
        Organization.objects.filter(name="acme").count() == 1 and Project.objects.filter(organization=org).count() == 2
    )


def test_provisioning_joins_existing_objects(db: Any, settings: Any) -> None:
    existing = ProjectFactory(organization=OrganizationFactory(name="acme"), name="web")
    settings.NEPHELE_LDAP_GROUP_ROLES = {"cn=ops": [["acme", "web", "admin"]]}
    bob = UserFactory(username="bob")
    assert sync_roles(bob, {"cn=ops"}) == ["admin@acme/web"]
    assert Membership.objects.get(user=bob).project == existing
    assert _audit(existing.organization, "create") is None


def test_project_delete_refusal(admin_user: Any, member: Any, project: Any, template: Any) -> None:
    from compute import services

    services.create_vms(member, project=project, template=template, name="lives", hold=True)
    with pytest.raises(Conflict, match="lives"):
        tenancy.delete_project(admin_user, project.pk)
