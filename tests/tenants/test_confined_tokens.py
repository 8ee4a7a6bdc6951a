"""Token scope as a capability (docs/authentication.md, "Confined tokens").

A token confined to a project acts only inside it: the tokens it creates are confined to the same
project and expire no later than it; it sees and revokes only itself; it cannot touch SSH keys,
second-factor devices, passwords, users or organizations. Every token expires
(NEPHELE_TOKEN_MAX_DAYS), and an organization's 2FA requirement stops the tokens of members
without a device. Everything is exercised through the real API with real tokens.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from tenants import twofactor
from tenants.models import ApiToken, Membership, Organization, OrgMembership, Project, SSHKey
from tenants.roles import OrgRole, Role
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvDAmcYNL3ht2uz0zIJ2om+PBjfx10nIzQ3CUHuvzYM alice@example"
ED25519_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAGYAW6JKY9AC19kgOK6MuEwgYUMO7xnxZQaH1Mjr3Mt bob@example"


def bearer(secret: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return c


def new_token(user: Any, **body: Any) -> tuple[ApiToken, str]:
    """A token made the way a user makes one: through the API, signed in."""
    resp = client_for(user).post("/api/v1/tokens/", {"name": "t", **body}, format="json")
    assert resp.status_code == 201, resp.content
    return ApiToken.objects.get(pk=resp.json()["id"]), resp.json()["token"]


@pytest.fixture
def world(member: Any, project: Any) -> dict[str, Any]:
    """``member`` administers project A's organization (so organization writes would be allowed
    to them unconfined) and is a member of project B; ``confined`` is their token for A."""
    other = ProjectFactory()
    MembershipFactory(user=member, project=other, role=Role.MEMBER)
    OrgMembership.objects.create(user=member, organization=project.organization, role=OrgRole.ADMIN)
    UserFactory(username="newbie")
    confined, secret = new_token(member, name="confined", project=project.pk)
    unconfined, _ = new_token(member, name="laptop")
    key = client_for(member).post("/api/v1/ssh-keys/", {"name": "k", "public_key": ED25519}, format="json")
    assert key.status_code == 201, key.content
    ids = {
        "A": project.pk, "B": other.pk, "O": project.organization_id, "SELF": confined.pk,
        "OTHER": unconfined.pk, "S": key.json()["id"],
    }  # fmt: skip
    return {"secret": secret, "token": confined, "ids": ids, "member": member}


# (method, path, body, expected status with a token confined to project A)
CONFINED_MATRIX: list[tuple[str, str, dict[str, Any] | None, int]] = [
    # tokens: only itself; new tokens stay in A and expire no later than it
    ("GET", "/api/v1/tokens/", None, 200),
    ("GET", "/api/v1/tokens/{SELF}/", None, 200),
    ("GET", "/api/v1/tokens/{OTHER}/", None, 404),
    ("DELETE", "/api/v1/tokens/{OTHER}/", None, 404),
    ("POST", "/api/v1/tokens/", {"name": "x"}, 201),
    ("POST", "/api/v1/tokens/", {"name": "x", "project": None, "days": None}, 201),
    ("POST", "/api/v1/tokens/", {"name": "x", "project": "{A}", "days": 1}, 201),
    ("POST", "/api/v1/tokens/", {"name": "x", "project": "{B}"}, 403),
    ("POST", "/api/v1/tokens/", {"name": "x", "days": 90}, 400),  # would outlive the creating token
    ("DELETE", "/api/v1/tokens/{SELF}/", None, 204),
    # SSH keys: readable, not writable
    ("GET", "/api/v1/ssh-keys/", None, 200),
    ("POST", "/api/v1/ssh-keys/", {"name": "k2", "public_key": ED25519_B}, 403),
    ("DELETE", "/api/v1/ssh-keys/{S}/", None, 403),
    # projects and organizations: its own, read-only above the project
    ("GET", "/api/v1/projects/", None, 200),
    ("GET", "/api/v1/projects/{A}/", None, 200),
    ("GET", "/api/v1/projects/{B}/", None, 404),
    ("POST", "/api/v1/projects/", {"organization": "{O}", "name": "new"}, 403),
    ("GET", "/api/v1/organizations/", None, 200),
    ("GET", "/api/v1/organizations/{O}/", None, 200),
    ("PATCH", "/api/v1/organizations/{O}/", {"require_2fa": False, "description": "x"}, 403),
    ("POST", "/api/v1/organizations/{O}/roles/", {"user": "newbie", "role": "admin"}, 403),
    ("POST", "/api/v1/projects/{A}/members/", {"user": "newbie", "role": "viewer"}, 200),  # inside A: allowed
    # user administration (and with it passwords) is cloud-wide
    ("GET", "/api/v1/users/", None, 403),
    # the browser's account pages (second factor, keys, tokens) take no token at all
    ("GET", "/account/2fa/", None, 302),
    ("POST", "/account/2fa/", {"token": "123456"}, 302),
    ("POST", "/account/action/", {"what": "key-delete", "id": "{S}"}, 302),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _state() -> tuple[Any, ...]:
    return (
        ApiToken.objects.count(),
        ApiToken.objects.filter(revoked_at__isnull=False).count(),
        SSHKey.objects.count(),
        Project.objects.count(),
        list(Organization.objects.values_list("pk", "description", "require_2fa").order_by("pk")),
        OrgMembership.objects.count(),
        TOTPDevice.objects.count(),
    )


@pytest.mark.parametrize(
    "method,path,body,expected", CONFINED_MATRIX, ids=[f"{m} {p} {json.dumps(b)}" for m, p, b, _e in CONFINED_MATRIX]
)
def test_confined_token_matrix(method: str, path: str, body: Any, expected: int, world: dict[str, Any]) -> None:
    ids = world["ids"]
    before, members_before = _state(), Membership.objects.count()
    resp = bearer(world["secret"]).generic(
        method, _fill(path, ids), data=json.dumps(_fill(body, ids)) if body else "", content_type="application/json"
    )
    assert resp.status_code == expected, (method, path, resp.status_code, resp.content[:300])
    if resp.status_code >= 400 and method != "GET":
        assert _state() == before and Membership.objects.count() == members_before, "a refusal changed state"
    if resp.status_code == 403 and path.startswith("/api/"):
        assert "confined" in json.dumps(resp.json()), resp.content  # says why


def test_token_created_with_a_confined_token_is_confined_and_no_longer_lived(world: dict[str, Any]) -> None:
    """Regression: POST /tokens/ without a project from a confined token answered an unconfined token."""
    parent: ApiToken = world["token"]
    api = bearer(world["secret"])
    for body in ({"name": "child"}, {"name": "child", "project": None}, {"name": "child", "days": None}):
        resp = api.post("/api/v1/tokens/", body, format="json")
        assert resp.status_code == 201, resp.content
        assert resp.json()["project"] == parent.project_id
        assert parse_datetime(resp.json()["expires_at"]) <= parent.expires_at
        child = bearer(resp.json()["token"])
        assert [p["id"] for p in child.get("/api/v1/projects/").json()["results"]] == [world["ids"]["A"]]
        # and the child cannot widen itself either
        widened = child.post("/api/v1/tokens/", {"name": "w", "project": world["ids"]["B"]}, format="json")
        assert widened.status_code == 403 and "project" in widened.json()
    too_long = api.post("/api/v1/tokens/", {"name": "long", "days": 90}, format="json")
    assert too_long.status_code == 400 and too_long.json()["field"] == "days"
    other = api.post("/api/v1/tokens/", {"name": "b", "project": world["ids"]["B"]}, format="json")
    assert other.status_code == 403 and other.json()["field"] == "project"
    assert ApiToken.objects.filter(project__isnull=True, name__in=["child", "long", "b", "w"]).count() == 0


def test_confined_token_sees_and_revokes_only_itself(world: dict[str, Any]) -> None:
    member, ids = world["member"], world["ids"]
    api = bearer(world["secret"])
    assert [t["id"] for t in api.get("/api/v1/tokens/").json()["results"]] == [ids["SELF"]]
    assert api.delete(f"/api/v1/tokens/{ids['OTHER']}/").status_code == 404
    assert ApiToken.objects.get(pk=ids["OTHER"]).revoked_at is None
    # unconfined, the user sees all of them
    assert {t["id"] for t in client_for(member).get("/api/v1/tokens/").json()["results"]} >= {ids["SELF"], ids["OTHER"]}
    assert api.delete(f"/api/v1/tokens/{ids['SELF']}/").status_code == 204
    assert api.get("/api/v1/tokens/").status_code == 401  # revoked itself


def test_confined_token_cannot_add_or_delete_ssh_keys(world: dict[str, Any]) -> None:
    api = bearer(world["secret"])
    resp = api.post("/api/v1/ssh-keys/", {"name": "k2", "public_key": ED25519_B}, format="json")
    assert resp.status_code == 403 and "confined" in resp.json()["detail"]
    assert api.delete(f"/api/v1/ssh-keys/{world['ids']['S']}/").status_code == 403
    assert SSHKey.objects.count() == 1
    assert api.get("/api/v1/ssh-keys/").json()["count"] == 1  # reading them (for VM creation) is fine


def test_confined_admin_token_cannot_administer_users_or_change_passwords(admin_user: Any, project: Any) -> None:
    _, secret = new_token(admin_user, project=project.pk)
    api = bearer(secret)
    pw_before = type(admin_user).objects.get(pk=admin_user.pk).password
    body = {"action": "reset-credentials", "password": "a-new-long-passphrase-42"}
    resp = api.post(f"/api/v1/users/{admin_user.pk}/action/", body, format="json")
    assert resp.status_code == 403 and "confined" in resp.json()["detail"]
    assert type(admin_user).objects.get(pk=admin_user.pk).password == pw_before
    assert (
        api.post("/api/v1/users/", {"username": "u2", "password": "a-good-long-pass-42"}, format="json").status_code
        == 403
    )
    assert api.post("/api/v1/organizations/", {"name": "neworg"}, format="json").status_code == 403
    # the same admin with an unconfined token still administers users
    _, free = new_token(admin_user)
    assert bearer(free).get("/api/v1/users/").status_code == 200


def test_second_factor_services_refuse_a_confined_caller(member: Any, project: Any) -> None:
    """No API endpoint manages TOTP devices (the pages need a session, see the matrix); the
    services themselves refuse a confined caller too."""
    from portal.errors import PermissionDenied

    member._nephele_token_project = project.pk
    with pytest.raises(PermissionDenied, match="confined"):
        twofactor.start_enrolment(member)
    assert not TOTPDevice.objects.exists()


# -- tokens always expire ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"days": None}], ids=["days absent", "days null"])
def test_days_absent_or_null_gets_the_maximum_lifetime(member: Any, body: dict[str, Any], settings: Any) -> None:
    """Regression: ``days: null`` made a token that never expires."""
    settings.NEPHELE_TOKEN_MAX_DAYS = 20
    token, secret = new_token(member, **body)
    assert token.expires_at is not None
    assert abs(token.expires_at - (timezone.now() + timedelta(days=20))) < timedelta(minutes=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(secret).get("/api/v1/projects/").status_code == 401


def test_days_above_the_maximum_is_refused_naming_the_limit(member: Any, settings: Any) -> None:
    settings.NEPHELE_TOKEN_MAX_DAYS = 30
    for days in (31, 0, -1):
        resp = client_for(member).post("/api/v1/tokens/", {"name": "a", "days": days}, format="json")
        assert resp.status_code == 400 and resp.json()["field"] == "days" and "30" in resp.json()["detail"], days
    assert client_for(member).post("/api/v1/tokens/", {"name": "a", "days": 30}, format="json").status_code == 201
    assert ApiToken.objects.count() == 1


def test_a_token_without_expiry_is_refused(member: Any) -> None:
    """Rows made before the rule get an expiry from the migration; one without is refused."""
    token, secret = new_token(member)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None)
    assert bearer(secret).get("/api/v1/projects/").status_code == 401


def test_html_token_form_follows_the_same_rule(member: Any, project: Any, settings: Any) -> None:
    settings.NEPHELE_TOKEN_MAX_DAYS = 30
    c = Client()
    c.force_login(member)
    assert 'max="30"' in c.get("/account/").content.decode()
    c.post("/account/action/", {"what": "token-create", "name": "ui", "days": ""})
    token = ApiToken.objects.get(name="ui")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    for days in ("31", "abc", "9" * 5000):
        page = c.post("/account/action/", {"what": "token-create", "name": "bad", "days": days}, follow=True)
        assert "days" in page.content.decode(), days
    stranger = ProjectFactory()
    c.post("/account/action/", {"what": "token-create", "name": "tampered", "project": str(stranger.pk)})
    assert not ApiToken.objects.filter(name__in=["bad", "tampered"]).exists()  # never an unconfined one


# -- an organization's 2FA requirement stops tokens of members without a device ---------------


def test_tokens_are_refused_once_the_organization_requires_2fa_until_the_user_enrols(
    member: Any, project: Any, project_admin: Any
) -> None:
    """Regression: enabling require_2fa left earlier tokens of users without a device working."""
    _, secret = new_token(member)
    _, confined = new_token(member, project=project.pk)
    assert bearer(secret).get("/api/v1/projects/").status_code == 200
    org_admin = UserFactory(username="orgadmin")
    OrgMembership.objects.create(user=org_admin, organization=project.organization, role=OrgRole.ADMIN)
    resp = client_for(org_admin).patch(
        f"/api/v1/organizations/{project.organization_id}/", {"require_2fa": True}, format="json"
    )
    assert resp.status_code == 200, resp.content
    for s in (secret, confined):
        refused = bearer(s).get("/api/v1/projects/")
        assert refused.status_code == 403 and "enrol" in refused.json()["detail"], refused.content
        assert bearer(s).post("/api/v1/tokens/", {"name": "sneaky"}, format="json").status_code == 403
    assert not ApiToken.objects.filter(name="sneaky").exists()
    TOTPDevice.objects.create(user=member, name="authenticator", confirmed=True)  # enrolled (through the pages)
    assert bearer(secret).get("/api/v1/projects/").status_code == 200
    # a member of another organization, without the requirement, was never affected
    outsider = UserFactory(username="outsider")
    MembershipFactory(user=outsider, project=ProjectFactory(), role=Role.MEMBER)
    _, theirs = new_token(outsider)
    assert bearer(theirs).get("/api/v1/projects/").status_code == 200
