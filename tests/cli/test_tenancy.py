"""Tenancy and credentials through the real entry point against a live server: tokens, SSH keys,
quotas, users, roles, projects and organizations — and that a tenant is refused (exit 5)
what only cloud admins may do."""

from __future__ import annotations

import subprocess
from typing import Any

from django.contrib.auth import get_user_model

from tenants.models import ApiToken, Membership, SSHKey
from tests.factories import OrganizationFactory

from .conftest import admin_json, nephele, ok_json


def test_tokens_and_ssh_keys(cloud: dict[str, Any]) -> None:
    made = ok_json(cloud, "token", "create", "ci", "--days", "7", "--confine", str(cloud["project"]))
    assert made["token"].startswith("nph_") and made["project"] == cloud["project"]
    assert "shown only now" in nephele(cloud, "token", "create", "other").stderr
    assert {"given", "ci", "other"} <= {t["name"] for t in ok_json(cloud, "token", "list")}
    too_long = nephele(cloud, "token", "create", "x", "--days", "100000")
    assert too_long.returncode == 1 and "field days" in too_long.stderr
    assert ok_json(cloud, "token", "revoke", str(made["id"]), "--yes")[0]["result"] == "revoked"
    assert ApiToken.objects.get(pk=made["id"]).revoked_at is not None

    key_file = cloud["tmp"] / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "clio@laptop", "-f", str(key_file)], check=True
    )
    key = ok_json(cloud, "sshkey", "add", "laptop", str(key_file) + ".pub")
    assert key["fingerprint"].startswith("SHA256:") and key["name"] == "laptop"
    bad = nephele(cloud, "sshkey", "add", "junk", "--key", "ssh-rsa not-a-key")
    assert bad.returncode == 1 and "field public_key" in bad.stderr, bad.stderr
    assert nephele(cloud, "sshkey", "add", "none").returncode == 2
    assert [k["id"] for k in ok_json(cloud, "sshkey", "list")] == [key["id"]]
    assert ok_json(cloud, "sshkey", "remove", str(key["id"]), "--yes")[0]["result"] == "removed"
    assert not SSHKey.objects.exists()


def test_quotas_show_and_set(cloud: dict[str, Any]) -> None:
    lines = {q["resource"]: q for q in ok_json(cloud, "quota", "show")}
    assert lines["vcpu"]["limit"] == -1
    refused = nephele(cloud, "quota", "set", "vcpu", "8")
    assert refused.returncode == 5 and "403" in refused.stderr
    lines = {q["resource"]: q for q in admin_json(cloud, "quota", "set", "vcpu", "8")}
    assert lines["vcpu"]["limit"] == 8
    bad = nephele(cloud, "--profile", "root", "quota", "set", "nonsense", "8")
    assert bad.returncode == 1 and "field resource" in bad.stderr
    # a quota refusal names the resource
    over = nephele(cloud, "vm", "create", "big", "--template", str(cloud["template"]), "--vcpu", "9", "--hold")
    assert over.returncode == 5 and "field vcpu" in over.stderr, over.stderr


def test_users_roles_projects_and_organizations(cloud: dict[str, Any]) -> None:
    assert nephele(cloud, "user", "list").returncode == 5  # a tenant: 403
    dora = admin_json(cloud, "user", "create", "dora", "--email", "dora@example.org", env_password="Sup3r-secret-pw")
    assert dora["username"] == "dora" and dora["is_active"] is True
    taken = nephele(cloud, "--profile", "root", "user", "create", "dora")
    assert taken.returncode == 4 and "field username" in taken.stderr
    assert admin_json(cloud, "user", "disable", str(dora["id"]))["is_active"] is False
    assert admin_json(cloud, "user", "enable", str(dora["id"]))["is_active"] is True

    members = ok_json(cloud, "role", "grant", "dora", "viewer")  # clio administers the project
    assert {"user": "dora", "role": "viewer"} in members
    assert {"user": "dora", "role": "member"} in ok_json(cloud, "role", "grant", "dora", "member")
    assert {"user": "dora", "role": "member"} in ok_json(cloud, "role", "list")
    assert ok_json(cloud, "project", "members", str(cloud["project"])) == ok_json(cloud, "role", "list")
    assert nephele(cloud, "role", "grant", "nobody-here", "member").returncode == 3
    bad_role = nephele(cloud, "role", "grant", "dora", "emperor")
    assert bad_role.returncode == 1 and "role" in bad_role.stderr, bad_role.stderr
    assert "dora" not in [m["user"] for m in ok_json(cloud, "role", "revoke", "dora")]
    assert not Membership.objects.filter(user__username="dora").exists()
    assert {r["role"] for r in ok_json(cloud, "role", "list", "--known")} == {"admin", "member", "viewer"}

    org = OrganizationFactory()
    project = admin_json(cloud, "project", "create", "lab", "--organization", str(org.pk))
    assert project["name"] == "lab" and project["organization"] == org.name
    assert admin_json(cloud, "role", "grant", "dora", "admin", "--organization", str(org.pk))["role"] == "admin"
    assert admin_json(cloud, "project", "delete", str(project["id"]), "--yes")[0]["result"] == "deleted"
    made_org = admin_json(cloud, "org", "create", "acme", "--description", "Acme Inc.")
    assert made_org["name"] == "acme" and made_org["enabled"] is True
    assert admin_json(cloud, "user", "delete", str(dora["id"]), "--yes")[0]["result"] == "deleted"
    assert not get_user_model().objects.filter(username="dora").exists()
