"""Identity pages: the account (tokens shown once, SSH keys) and administration."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from tenants.models import ApiToken, Membership, Organization, OrgMembership, Project, SSHKey
from tests.factories import UserFactory

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvDAmcYNL3ht2uz0zIJ2om+PBjfx10nIzQ3CUHuvzYM alice@example"


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_token_is_shown_once_in_the_ui_and_revoked_there(member: Any, project: Any) -> None:
    c = browser(member)
    c.post("/account/action/", {"what": "token-create", "name": "laptop", "days": 30, "project": project.pk})
    first = c.get("/account/").content.decode()
    token = ApiToken.objects.get()
    assert f"nph_{token.prefix}_" in first and token.project_id == project.pk
    assert f"nph_{token.prefix}_" not in c.get("/account/").content.decode()  # once
    c.post("/account/action/", {"what": "token-revoke", "id": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_ssh_keys_in_the_ui(member: Any) -> None:
    c = browser(member)
    page = c.post("/account/action/", {"what": "key-add", "name": "k", "public_key": "ssh-rsa nonsense"}, follow=True)
    assert b"public_key" in page.content and not SSHKey.objects.exists()
    page = c.post("/account/action/", {"what": "key-add", "name": "k", "public_key": ED25519}, follow=True)
    assert b"SHA256:1Ax+htc8T3GU/OveExH2fTOPUh/zgelKMtrJC18j+oc" in page.content


def test_org_admin_creates_a_project_and_grants_a_role(db: Any) -> None:
    org = Organization.objects.create(name="acme")
    boss = UserFactory(username="boss")
    OrgMembership.objects.create(user=boss, organization=org)
    UserFactory(username="carol")
    c = browser(boss)
    c.post("/identity/action/", {"what": "project-create", "organization": org.pk, "name": "web"})
    project = Project.objects.get(name="web")
    c.post("/identity/action/", {"what": "grant", "project": project.pk, "username": "carol", "role": "member"})
    assert Membership.objects.get(user__username="carol").role == "member"
    assert b"carol" in c.get(f"/identity/?project={project.pk}").content


def test_member_cannot_administer(member: Any, project: Any) -> None:
    UserFactory(username="dave")
    c = browser(member)
    page = c.post(
        "/identity/action/", {"what": "grant", "project": project.pk, "username": "dave", "role": "admin"}, follow=True
    )
    assert b"not found" in page.content
    assert not Membership.objects.filter(user__username="dave").exists()
    c.post("/identity/action/", {"what": "org-create", "name": "mine"})
    assert not Organization.objects.filter(name="mine").exists()


def test_cloud_admin_manages_users(admin_user: Any, member: Any) -> None:
    c = browser(admin_user)
    page = c.post("/identity/action/", {"what": "user-create", "username": "erin", "password": "short"}, follow=True)
    assert b"password" in page.content and not get_user_model().objects.filter(username="erin").exists()
    c.post("/identity/action/", {"what": "user-create", "username": "erin", "password": "a-long-enough-pass-7"})
    erin = get_user_model().objects.get(username="erin")
    c.post("/identity/action/", {"what": "user-disable", "id": erin.pk})
    erin.refresh_from_db()
    assert not erin.is_active
    c.post("/identity/action/", {"what": "user-reset", "id": member.pk, "password": "another-good-pass-8"})
    member.refresh_from_db()
    assert member.check_password("another-good-pass-8")


def _switch(c: Client, project: Project) -> None:
    c.post("/project/switch/", {"project": project.pk, "next": "/identity/"})


def test_grant_follows_the_switcher_and_never_replaces_a_role(admin_user: Any, project: Any) -> None:
    """Issue 14: a project admin was demoted to viewer by "Grant"; it now refuses, and a role
    changes only through the explicit "change role" request."""
    other = Project.objects.create(organization=project.organization, name="other")
    boss = UserFactory(username="boss")
    Membership.objects.create(user=boss, project=project, role="admin")
    c = browser(admin_user)
    _switch(c, project)
    page = c.get("/identity/").content.decode()
    assert f"Members of {project}" in page and 'value="role-change"' in page

    # given the switcher says "project": a grant naming another project (a stale page) changes nothing
    UserFactory(username="carol")
    page = c.post(
        "/identity/action/", {"what": "grant", "project": other.pk, "username": "carol", "role": "member"}, follow=True
    ).content.decode()
    assert "active project changed" in page and not Membership.objects.filter(user__username="carol").exists()

    # a grant to someone who is a member already is refused with a clear message; the role stays
    page = c.post(
        "/identity/action/", {"what": "grant", "project": project.pk, "username": "boss", "role": "viewer"}, follow=True
    ).content.decode()
    assert "already a member" in page and "Change role" in page
    assert Membership.objects.get(user=boss, project=project).role == "admin"

    # the explicit change of role works, and a grant to a newcomer adds them
    c.post("/identity/action/", {"what": "role-change", "project": project.pk, "username": "boss", "role": "viewer"})
    assert Membership.objects.get(user=boss, project=project).role == "viewer"
    c.post("/identity/action/", {"what": "grant", "project": project.pk, "username": "carol", "role": "member"})
    assert Membership.objects.get(user__username="carol", project=project).role == "member"
    # changing the role of a non-member is refused (it is no back door to "grant")
    UserFactory(username="dan")
    page = c.post(
        "/identity/action/",
        {"what": "role-change", "project": project.pk, "username": "dan", "role": "admin"},
        follow=True,
    ).content.decode()
    assert "not a member" in page and not Membership.objects.filter(user__username="dan").exists()
    c.post("/identity/action/", {"what": "member-remove", "project": project.pk, "username": "carol"})
    assert not Membership.objects.filter(user__username="carol").exists()

    # after switching, the page and the grant act on the other project
    _switch(c, other)
    assert f"Members of {other}" in c.get("/identity/").content.decode()
    c.post("/identity/action/", {"what": "grant", "project": other.pk, "username": "carol", "role": "viewer"})
    assert Membership.objects.get(user__username="carol").project_id == other.pk


def test_guardians_anonymous_user_is_not_a_person(admin_user: Any) -> None:
    from guardian.utils import get_anonymous_user

    anonymous = get_anonymous_user()  # django-guardian's stand-in row, created at migrate
    page = browser(admin_user).get("/identity/").content.decode()
    assert f'value="{anonymous.pk}"' not in page and anonymous.username not in page
    # "Reset credentials of" preselects nobody
    assert '<option value="" selected disabled>Choose a user…</option>' in page


def test_quota_screens_set_defaults_and_limits_with_clear_errors(admin_user: Any, project: Any) -> None:
    from tenants.quotas import QuotaDefault, QuotaLimit

    c = browser(admin_user)
    _switch(c, project)
    page = c.get("/identity/quotas/").content.decode()
    assert f"Limits of {project}" in page and 'id="default-vcpu"' in page and 'data-testid="quota-vcpu"' in page

    c.post("/identity/quotas/action/", {"what": "default", "resource": "vcpu", "limit": "64"})
    assert QuotaDefault.objects.get(resource="vcpu").limit == 64
    c.post("/identity/quotas/action/", {"what": "limit", "project": project.pk, "resource": "vcpu", "limit": "8"})
    assert QuotaLimit.objects.get(project=project, resource="vcpu", user=None).limit == 8
    assert 'data-testid="quota-vcpu">0 / 8<' in c.get("/identity/quotas/").content.decode()

    # bad input names the field and the limit, and changes nothing
    for bad, says in (("-5", "limit must be -1"), ("ten", "whole number"), ("9" * 16, "at most 1000000000000000")):
        page = c.post(
            "/identity/quotas/action/", {"what": "default", "resource": "vcpu", "limit": bad}, follow=True
        ).content.decode()
        assert "limit:" in page and says in page, bad
    page = c.post(
        "/identity/quotas/action/", {"what": "default", "resource": "gpus", "limit": "1"}, follow=True
    ).content.decode()
    assert "resource: resource must be one of" in page
    assert QuotaDefault.objects.get(resource="vcpu").limit == 64 and QuotaDefault.objects.count() == 1


def test_org_admins_see_their_projects_quotas_but_do_not_set_them(db: Any) -> None:
    from tenants.quotas import QuotaDefault

    org = Organization.objects.create(name="acme")
    web = Project.objects.create(organization=org, name="web")
    boss = UserFactory(username="boss")
    OrgMembership.objects.create(user=boss, organization=org)
    c = browser(boss)
    page = c.get("/identity/quotas/").content.decode()
    assert f'id="org-project-{web.pk}"' in page and "Cloud-wide defaults" not in page
    page = c.post(
        "/identity/quotas/action/", {"what": "default", "resource": "vcpu", "limit": "1"}, follow=True
    ).content.decode()
    assert "only cloud administrators" in page and not QuotaDefault.objects.exists()
    assert browser(UserFactory(username="nobody")).get("/identity/quotas/").status_code == 404
