"""Administration of organizations, projects, users and roles through the API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from compute import services
from tenants.models import Membership, Organization, OrgMembership, Project
from tests.conftest import client_for
from tests.factories import UserFactory


def test_cloud_admin_creates_org_project_user_and_grants_roles(admin_user: Any) -> None:
    api = client_for(admin_user)
    org = api.post("/api/v1/organizations/", {"name": "acme", "require_2fa": False}, format="json")
    assert org.status_code == 201, org.content
    proj = api.post("/api/v1/projects/", {"organization": org.json()["id"], "name": "web"}, format="json")
    assert proj.status_code == 201, proj.content
    user = api.post("/api/v1/users/", {"username": "bob", "password": "correct-horse-battery-9"}, format="json")
    assert user.status_code == 201, user.content
    weak = api.post("/api/v1/users/", {"username": "eve", "password": "123"}, format="json")
    assert weak.status_code == 400 and "password" in weak.json()
    grant = api.post(f"/api/v1/projects/{proj.json()['id']}/members/", {"user": "bob", "role": "viewer"}, format="json")
    assert grant.status_code == 200 and grant.json() == [{"user": "bob", "role": "viewer"}]
    bob = get_user_model().objects.get(username="bob")
    assert [p["name"] for p in client_for(bob).get("/api/v1/projects/").json()["results"]] == ["web"]


def test_org_admin_manages_only_their_organization(db: Any) -> None:
    mine, theirs = Organization.objects.create(name="mine"), Organization.objects.create(name="theirs")
    boss = UserFactory(username="boss")
    OrgMembership.objects.create(user=boss, organization=mine, role="admin")
    api = client_for(boss)
    assert api.post("/api/v1/projects/", {"organization": mine.pk, "name": "p1"}, format="json").status_code == 201
    resp = api.post("/api/v1/projects/", {"organization": theirs.pk, "name": "p2"}, format="json")
    assert resp.status_code == 404 and "organization" in resp.json()
    p1 = Project.objects.get(name="p1")
    UserFactory(username="carol")
    assert (
        api.post(f"/api/v1/projects/{p1.pk}/members/", {"user": "carol", "role": "member"}, format="json").status_code
        == 200
    )
    assert api.post("/api/v1/organizations/", {"name": "new"}, format="json").status_code == 403
    assert api.get("/api/v1/users/").status_code == 403
    assert [o["name"] for o in api.get("/api/v1/organizations/").json()["results"]] == ["mine"]


def test_member_cannot_grant_roles(member: Any, project: Any) -> None:
    UserFactory(username="dave")
    resp = client_for(member).post(
        f"/api/v1/projects/{project.pk}/members/", {"user": "dave", "role": "admin"}, format="json"
    )
    assert resp.status_code == 404
    assert not Membership.objects.filter(user__username="dave").exists()


def test_deleting_a_project_that_owns_resources_is_refused_with_the_list(
    admin_user: Any, member: Any, project: Any, template: Any
) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="keeper", hold=True)
    resp = client_for(admin_user).delete(f"/api/v1/projects/{project.pk}/")
    assert resp.status_code == 409
    assert f"VM keeper (#{vm.pk}, HOLD)" in resp.json()["detail"]
    assert Project.objects.filter(pk=project.pk).exists()
    services.perform_action(member, vm.pk, services.ActionRequest(action="terminate"))
    assert client_for(admin_user).delete(f"/api/v1/projects/{project.pk}/").status_code == 204


def test_disable_and_reset_credentials(admin_user: Any, member: Any) -> None:
    api = client_for(admin_user)
    resp = client_for(member).post("/api/v1/tokens/", {"name": "t"}, format="json")
    secret = resp.json()["token"]
    assert (
        api.post(
            f"/api/v1/users/{member.pk}/action/",
            {"action": "reset-credentials", "password": "a-much-better-pass-77"},
            format="json",
        ).status_code
        == 200
    )
    c = client_for(None)
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert c.get("/api/v1/projects/").status_code == 401  # tokens revoked with the reset
    assert (
        api.post(f"/api/v1/users/{member.pk}/action/", {"action": "disable"}, format="json").json()["is_active"]
        is False
    )
    member.refresh_from_db()
    assert member.check_password("a-much-better-pass-77") and not member.is_active


def test_cloud_wide_quota_defaults_through_the_api(admin_user: Any, project: Any) -> None:
    from tenants.quotas import QuotaDefault, usage

    api = client_for(admin_user)
    before = {q["resource"]: q["limit"] for q in api.get("/api/v1/quota-defaults/").json()}
    assert before["vcpu"] == -1 and set(before) >= {"vms", "memory_mb", "public_ips"}
    resp = api.post("/api/v1/quota-defaults/", {"resource": "vcpu", "limit": 48}, format="json")
    assert resp.status_code == 200 and {q["resource"]: q["limit"] for q in resp.json()}["vcpu"] == 48
    assert {q.resource: q.limit for q in usage(project)}["vcpu"] == 48  # a project without its own limit
    for body in (
        {"resource": "vcpu", "limit": -2},
        {"resource": "vcpu", "limit": 10**16},
        {"resource": "gpu", "limit": 1},
    ):
        bad = api.post("/api/v1/quota-defaults/", body, format="json")
        assert bad.status_code == 400, bad.content
        assert ("limit" if body["resource"] == "vcpu" else "resource") in bad.json()
    assert list(QuotaDefault.objects.values_list("resource", "limit")) == [("vcpu", 48)]
