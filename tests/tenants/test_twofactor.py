"""TOTP second factor: enrolment, login with the code, organizations that require it."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


def code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def login(c: Client, password: str = "pw-123456789", token: str = "") -> Any:
    cache.clear()
    return c.post("/login/", {"username": "member", "password": password, "otp_token": token})


def enrol(c: Client) -> TOTPDevice:
    assert c.get("/account/2fa/").status_code == 200
    device = TOTPDevice.objects.get(confirmed=False)
    assert c.post("/account/2fa/", {"token": "000000" if code(device) != "000000" else "111111"}).status_code == 200
    assert c.post("/account/2fa/", {"token": code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_enrolled_user_needs_the_code(member: Any) -> None:
    c = Client()
    assert login(c).status_code == 302
    device = enrol(c)
    c.post("/logout/")
    assert login(c).status_code == 200  # code missing: form again
    assert "_auth_user_id" not in c.session
    assert login(c, token="123").status_code == 200
    device.refresh_from_db()
    device.last_t = -1  # allow the current code again
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None
    device.save()
    resp = login(c, token=code(device))
    assert resp.status_code == 302, resp.context["form"].errors
    assert c.get("/api/v1/projects/").status_code == 200


def test_organization_can_require_a_second_factor(member: Any, project: Any) -> None:
    project.organization.require_2fa = True
    project.organization.save()
    c = Client()
    assert login(c).status_code == 302
    resp = c.get("/api/v1/projects/")
    assert resp.status_code == 403 and "second factor" in resp.json()["detail"]
    assert c.get("/compute/vms/").status_code == 302  # sent to enrolment
    enrol(c)
    assert c.get("/api/v1/projects/").status_code == 200
