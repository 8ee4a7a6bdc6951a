"""Kerberos SSO (HTTP Negotiate) against a real MIT KDC created here (k5test)."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def realm(tmp_path_factory: Any) -> Iterator[Any]:
    if not shutil.which("krb5kdc") and not os.path.exists("/usr/sbin/krb5kdc"):
        if os.environ.get("CI"):
            pytest.fail("MIT krb5kdc is needed for the Kerberos tier: run `make test` (it installs it)")
        pytest.skip("krb5-kdc is not installed (make test installs it)")
    import k5test

    r = k5test.K5Realm(realm="NEPHELE.TEST")
    service = f"HTTP/{r.hostname}"
    r.addprinc(service)
    keytab = str(tmp_path_factory.mktemp("krb") / "http.keytab")
    r.extract_keytab(service, keytab)
    r.keytab_http = keytab
    saved = {k: os.environ.get(k) for k in r.env}
    os.environ.update(r.env)  # the client side (gssapi) uses the realm's krb5.conf and ccache
    yield r
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    r.stop()


def negotiate_token(r: Any) -> str:
    import gssapi

    name = gssapi.Name(f"HTTP@{r.hostname}", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, usage="initiate")
    return base64.b64encode(ctx.step()).decode()


@pytest.fixture
def kerberos_on(realm: Any, settings: Any, db: Any) -> Any:
    settings.NEPHELE_KRB5_KEYTAB = realm.keytab_http
    settings.NEPHELE_KRB5_CREATE_USERS = False
    return realm


def test_api_with_a_kerberos_ticket(kerberos_on: Any) -> None:
    UserFactory(username="user")  # k5test's user principal is user@NEPHELE.TEST
    resp = Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Negotiate {negotiate_token(kerberos_on)}")
    assert resp.status_code == 200, resp.content


def test_garbage_token_is_401_with_a_negotiate_challenge(kerberos_on: Any) -> None:
    resp = Client().get("/api/v1/projects/", HTTP_AUTHORIZATION="Negotiate " + base64.b64encode(b"junk").decode())
    assert resp.status_code == 401
    assert "Negotiate" in resp["WWW-Authenticate"]


def test_unknown_principal_is_refused_unless_creation_is_allowed(kerberos_on: Any, settings: Any) -> None:
    token = negotiate_token(kerberos_on)
    assert Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Negotiate {token}").status_code == 401
    assert not get_user_model().objects.filter(username="user").exists()
    settings.NEPHELE_KRB5_CREATE_USERS = True
    resp = Client().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Negotiate {negotiate_token(kerberos_on)}")
    assert resp.status_code == 200 and get_user_model().objects.filter(username="user").exists()


def test_portal_sign_in_with_kerberos(kerberos_on: Any) -> None:
    UserFactory(username="user")
    c = Client()
    challenge = c.get("/login/kerberos/")
    assert challenge.status_code == 401 and challenge["WWW-Authenticate"] == "Negotiate"
    assert b"Sign in with Kerberos" in c.get("/login/").content
    resp = c.get("/login/kerberos/?next=/compute/vms/", HTTP_AUTHORIZATION=f"Negotiate {negotiate_token(kerberos_on)}")
    assert resp.status_code == 302 and resp["Location"] == "/compute/vms/"
    assert c.get("/compute/vms/").status_code == 200
