"""Client certificates through a trusted TLS proxy; the same headers from anyone else are ignored."""

from __future__ import annotations

from typing import Any

from django.test import Client

HEADERS = {"HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS", "HTTP_X_SSL_CLIENT_S_DN": "CN=member,O=Example"}


def test_trusted_proxy_logs_the_certificate_user_in(member: Any, settings: Any) -> None:
    settings.NEPHELE_X509_TRUSTED_PROXIES = ["10.0.0.5"]
    resp = Client().get("/api/v1/projects/", REMOTE_ADDR="10.0.0.5", **HEADERS)
    assert resp.status_code == 200


def test_headers_from_an_untrusted_address_are_ignored(member: Any, settings: Any) -> None:
    settings.NEPHELE_X509_TRUSTED_PROXIES = ["10.0.0.5"]
    assert Client().get("/api/v1/projects/", REMOTE_ADDR="10.0.0.6", **HEADERS).status_code == 401


def test_failed_verification_or_unknown_cn_is_ignored(member: Any, settings: Any) -> None:
    settings.NEPHELE_X509_TRUSTED_PROXIES = ["10.0.0.5"]
    bad = {**HEADERS, "HTTP_X_SSL_CLIENT_VERIFY": "FAILED:certificate expired"}
    assert Client().get("/api/v1/projects/", REMOTE_ADDR="10.0.0.5", **bad).status_code == 401
    nobody = {**HEADERS, "HTTP_X_SSL_CLIENT_S_DN": "CN=nobody"}
    assert Client().get("/api/v1/projects/", REMOTE_ADDR="10.0.0.5", **nobody).status_code == 401


def test_off_by_default(member: Any, settings: Any) -> None:
    settings.NEPHELE_X509_TRUSTED_PROXIES = []
    assert Client().get("/api/v1/projects/", REMOTE_ADDR="10.0.0.5", **HEADERS).status_code == 401
