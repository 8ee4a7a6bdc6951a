"""Second factor (TOTP, django-otp).

Users enrol a TOTP device (authenticator app) from their account page or the API; from then
on the login form asks for the code. An organization admin can require a second factor for
the organization: its members without a device are sent to enrolment and may do nothing else
until they have one (API sessions answer 403).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import qrcode
import qrcode.image.svg
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Exists, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.errors import InvalidInput

from .credentials import refuse_confined
from .models import Organization

EXEMPT_PREFIXES = ("/login/", "/logout/", "/account/2fa/", "/static/", "/api/v1/account/totp/")


def requiring_2fa(user: Any) -> Exists:
    """An SQL EXISTS: one of the user's organizations (through a project role or an
    organization role) requires a second factor."""
    from tenants.models import Project
    from tenants.querysets import allowed_projects

    via_projects = Project.objects.filter(pk__in=allowed_projects(user, "view")).values("organization_id")
    return Exists(
        Organization.objects.filter(require_2fa=True).filter(Q(pk__in=via_projects) | Q(memberships__user=user))
    )


def requires_2fa(user: Any) -> bool:
    """True when one of the user's organizations requires a second factor (one query)."""
    from django.contrib.auth import get_user_model

    return bool(get_user_model().objects.filter(pk=user.pk).filter(requiring_2fa(user)).exists())


def has_device(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


class Enforce2FAMiddleware:
    """Members of organizations that require a second factor must enrol and verify first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(EXEMPT_PREFIXES)
            and getattr(request, "auth", None) is None
            and "_auth_user_id" in request.session
            and not user.is_verified()
            and (has_device(user) or requires_2fa(user))
        ):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "a second factor is required: enrol at /account/2fa/"}, status=403)
            return redirect(f"{reverse('account-2fa')}?next={request.path}")
        return self.get_response(request)


@transaction.atomic
def start_enrolment(user: Any) -> TOTPDevice:
    """A fresh unconfirmed device (replacing an unconfirmed one)."""
    refuse_confined(user, "manage second-factor devices")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


@transaction.atomic
def confirm_enrolment(request: HttpRequest, token: str) -> TOTPDevice:
    refuse_confined(request.user, "manage second-factor devices")
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        raise InvalidInput("start the enrolment first", field="token")
    if not (token or "").strip().isdigit() or not device.verify_token(token.strip()):
        raise InvalidInput("the code is not valid; check the time on your device", field="token")
    TOTPDevice.objects.filter(user=request.user, confirmed=True).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    otp_login(request, device)
    return device


def qr_svg(url: str) -> str:
    img = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue().decode()


@login_required
def account_2fa(request: HttpRequest) -> HttpResponse:
    """Enrol (or re-enrol) an authenticator app; verify an existing device."""
    error = ""
    if request.method == "POST":
        try:
            if has_device(request.user) and not request.user.is_verified():
                device = TOTPDevice.objects.get(user=request.user, confirmed=True)
                if not device.verify_token(request.POST.get("token", "").strip()):
                    raise InvalidInput("the code is not valid", field="token")
                otp_login(request, device)
            else:
                confirm_enrolment(request, request.POST.get("token", ""))
            return redirect(request.GET.get("next") or "dashboard")
        except InvalidInput as exc:
            error = exc.message
    device = None
    if not has_device(request.user) or request.GET.get("renew"):
        device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first() or start_enrolment(request.user)
    return render(
        request,
        "tenants/account_2fa.html",
        {
            "device": device,
            "qr": qr_svg(device.config_url) if device else "",
            "error": error,
            "enrolled": has_device(request.user),
            "required": requires_2fa(request.user),
        },
    )
