"""API tokens (shown once, hashed, expiring, revocable, project-scoped) and SSH keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from compute import services
from tenants.models import ApiToken, SSHKey
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvDAmcYNL3ht2uz0zIJ2om+PBjfx10nIzQ3CUHuvzYM alice@example"
ED25519_FP = "SHA256:1Ax+htc8T3GU/OveExH2fTOPUh/zgelKMtrJC18j+oc"  # as `ssh-keygen -lf` prints it


def bearer(secret: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return c


def test_token_is_shown_once_stored_hashed_and_works(member: Any, project: Any) -> None:
    resp = client_for(member).post("/api/v1/tokens/", {"name": "cli"}, format="json")
    assert resp.status_code == 201
    secret = resp.json()["token"]
    row = ApiToken.objects.get()
    assert secret not in (row.digest, row.prefix) and row.digest != secret
    assert "token" not in client_for(member).get("/api/v1/tokens/").json()["results"][0]
    assert bearer(secret).get("/api/v1/projects/").json()["count"] == 1
    assert bearer(secret + "x").get("/api/v1/projects/").status_code == 401
    assert bearer(secret).get("/api/v1/projects/").status_code == 200


def test_revoked_and_expired_tokens_are_refused(member: Any) -> None:
    secret = client_for(member).post("/api/v1/tokens/", {"name": "a", "days": 1}, format="json").json()["token"]
    token = ApiToken.objects.get()
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    resp = bearer(secret).get("/api/v1/vms/")
    assert resp.status_code == 401 and "Bearer" in resp["WWW-Authenticate"]
    secret2 = client_for(member).post("/api/v1/tokens/", {"name": "b"}, format="json").json()["token"]
    t2 = ApiToken.objects.get(name="b")
    assert client_for(member).delete(f"/api/v1/tokens/{t2.pk}/").status_code == 204
    assert bearer(secret2).get("/api/v1/vms/").status_code == 401


def test_project_scoped_token_sees_only_its_project(member: Any, project: Any, template: Any) -> None:
    other = ProjectFactory()
    MembershipFactory(user=member, project=other)
    services.create_vms(member, project=project, template=template, name="in-scope", hold=True)
    tpl2 = type(template).objects.create(project=other, owner=member, name="t2", vcpu=1, memory_mb=256)
    services.create_vms(member, project=other, template=tpl2, name="out-of-scope", hold=True)
    resp = client_for(member).post("/api/v1/tokens/", {"name": "scoped", "project": project.pk}, format="json")
    secret = resp.json()["token"]
    names = [v["name"] for v in bearer(secret).get("/api/v1/vms/").json()["results"]]
    assert names == ["in-scope"]
    assert [p["id"] for p in bearer(secret).get("/api/v1/projects/").json()["results"]] == [project.pk]
    body = {"name": "x", "project": other.pk, "template": tpl2.pk}
    assert bearer(secret).post("/api/v1/vms/", body, format="json").status_code == 404


def test_token_input_errors_name_the_field(member: Any) -> None:
    resp = client_for(member).post("/api/v1/tokens/", {"name": "a", "days": 5000}, format="json")
    assert resp.status_code == 400 and "days" in resp.json()
    assert not ApiToken.objects.exists()


def test_ssh_keys_are_validated_and_fingerprinted(member: Any) -> None:
    api = client_for(member)
    resp = api.post("/api/v1/ssh-keys/", {"name": "laptop", "public_key": ED25519}, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["fingerprint"] == ED25519_FP
    dup = api.post("/api/v1/ssh-keys/", {"name": "again", "public_key": ED25519}, format="json")
    assert dup.status_code == 409 and "public_key" in dup.json()  # registered already
    for bad in ("ssh-ed25519 not-base64!!", "ssh-dss AAAA", "hello"):
        r = api.post("/api/v1/ssh-keys/", {"name": "bad", "public_key": bad}, format="json")
        assert r.status_code == 400 and "public_key" in r.json(), bad
    assert SSHKey.objects.count() == 1
