"""LDAP single sign-on against a real slapd started here (python-ldap's slapdtest helper)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import Client

from tenants.ldap_config import ldap_settings
from tenants.models import Membership

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slapd() -> Iterator[Any]:
    if not shutil.which("slapd") and not os.path.exists("/usr/sbin/slapd"):
        if os.environ.get("CI"):
            pytest.fail("slapd is needed for the LDAP tier: run `make test` (it installs it)")
        pytest.skip("slapd is not installed (make test installs it)")
    os.environ.setdefault("SCHEMA", "/etc/ldap/schema")
    os.environ.setdefault("SLAPD", "/usr/sbin/slapd")
    import slapdtest

    server = slapdtest.SlapdObject()
    server.openldap_schema_files = ("core.ldif", "cosine.ldif", "inetorgperson.ldif")
    server.start()
    base = server.suffix
    people, groups = f"ou=people,{base}", f"ou=groups,{base}"
    ldif = f"""dn: {base}
objectClass: dcObject
objectClass: organization
dc: slapd-test
o: Example

dn: {people}
objectClass: organizationalUnit
ou: people

dn: {groups}
objectClass: organizationalUnit
ou: groups

dn: uid=alice,{people}
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
givenName: Alice
mail: alice@example.org
userPassword: wonderland-42

dn: uid=bob,{people}
objectClass: inetOrgPerson
uid: bob
cn: Bob Admin
sn: Admin
givenName: Bob
mail: bob@example.org
userPassword: builder-43

dn: cn=devs,{groups}
objectClass: groupOfNames
cn: devs
member: uid=alice,{people}

dn: cn=cloud-admins,{groups}
objectClass: groupOfNames
cn: cloud-admins
member: uid=bob,{people}
"""
    server.ldapadd(ldif)
    yield server
    server.stop()


@pytest.fixture
def ldap_on(slapd: Any, settings: Any, db: Any) -> dict[str, Any]:
    base = slapd.suffix
    env = {
        "NEPHELE_LDAP_URI": slapd.ldap_uri,
        "NEPHELE_LDAP_BIND_DN": slapd.root_dn,
        "NEPHELE_LDAP_BIND_PASSWORD": slapd.root_pw,
        "NEPHELE_LDAP_USER_BASE": f"ou=people,{base}",
        "NEPHELE_LDAP_GROUP_BASE": f"ou=groups,{base}",
        "NEPHELE_LDAP_ADMIN_GROUP": f"cn=cloud-admins,ou=groups,{base}",
        "NEPHELE_LDAP_GROUP_ROLES": json.dumps({f"cn=devs,ou=groups,{base}": [["acme", "web", "member"]]}),
    }
    for key, value in ldap_settings(env).items():
        setattr(settings, key, value)
    settings.AUTHENTICATION_BACKENDS = ["tenants.ldap.NepheleLDAPBackend", *settings.AUTHENTICATION_BACKENDS]
    return {"base": base}


def test_login_creates_the_user_with_attributes_and_group_roles(ldap_on: Any) -> None:
    user = authenticate(username="alice", password="wonderland-42")
    assert user is not None
    assert (user.first_name, user.last_name, user.email) == ("Alice", "Liddell", "alice@example.org")
    m = Membership.objects.get(user=user)
    assert (m.project.organization.name, m.project.name, m.role) == ("acme", "web", "member")
    assert not user.is_staff


def test_wrong_password_is_refused_and_creates_nothing(ldap_on: Any) -> None:
    assert authenticate(username="alice", password="nope") is None
    assert authenticate(username="mallory", password="x") is None
    assert not get_user_model().objects.filter(username__in=["alice", "mallory"]).exists()


def test_admin_group_makes_cloud_admins(ldap_on: Any) -> None:
    bob = authenticate(username="bob", password="builder-43")
    assert bob is not None and bob.is_staff and bob.is_superuser


def test_changed_mapping_updates_the_role_at_next_login(ldap_on: Any, settings: Any) -> None:
    authenticate(username="alice", password="wonderland-42")
    settings.NEPHELE_LDAP_GROUP_ROLES = {f"cn=devs,ou=groups,{ldap_on['base']}": [["acme", "web", "viewer"]]}
    authenticate(username="alice", password="wonderland-42")
    assert Membership.objects.get(user__username="alice").role == "viewer"


def test_login_page_with_ldap_credentials(ldap_on: Any) -> None:
    c = Client()
    assert c.post("/login/", {"username": "alice", "password": "wonderland-42"}).status_code == 302
    assert c.get("/api/v1/projects/").json()["results"][0]["name"] == "web"
