"""Kerberos single sign-on: HTTP Negotiate (SPNEGO) for the REST API and the portal.

The service's key comes from ``NEPHELE_KRB5_KEYTAB`` (principal ``HTTP/<host>@REALM``). A
principal ``alice@REALM`` is the user ``alice``; unknown users are created on first login
only when ``NEPHELE_KRB5_CREATE_USERS`` is true. See docs/authentication.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions


class NegotiateError(Exception):
    """The Negotiate token was refused."""


def accept(token_b64: str) -> tuple[str, bytes | None]:
    """Verify a SPNEGO/Kerberos token against the service keytab: (principal, reply token)."""
    import gssapi

    try:
        token = base64.b64decode(token_b64, validate=True)
    except (binascii.Error, ValueError):
        raise NegotiateError("the Negotiate token is not base64") from None
    try:
        creds = gssapi.Credentials(usage="accept", store={"keytab": settings.NEPHELE_KRB5_KEYTAB})
        ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        reply = ctx.step(token)
    except gssapi.exceptions.GSSError as exc:
        raise NegotiateError(f"Kerberos refused the token: {exc.gen_message()}") from None
    if not ctx.complete:
        raise NegotiateError("the Negotiate exchange needs more steps than Kerberos uses")
    return str(ctx.initiator_name), reply


def user_for(principal: str) -> Any:
    """The active user named by ``principal`` (realm stripped), created when allowed."""
    username = principal.split("@", 1)[0]
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None and settings.NEPHELE_KRB5_CREATE_USERS:
        user = User(username=username)
        user.set_unusable_password()
        user.save()
    if user is None or not user.is_active:
        raise NegotiateError(f"no active Nephele user for {principal}")
    return user


def _token(header: str) -> str | None:
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "negotiate":
        return parts[1]
    return None


class NegotiateAuthentication(authentication.BaseAuthentication):
    """REST API authentication by ``Authorization: Negotiate <token>``."""

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        token = _token(request.META.get("HTTP_AUTHORIZATION", ""))
        if token is None or not settings.NEPHELE_KRB5_KEYTAB:
            return None
        try:
            principal, _reply = accept(token)
            return user_for(principal), None
        except NegotiateError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request: Any) -> str:
        return "Negotiate"


def login_kerberos(request: HttpRequest) -> HttpResponse:
    """The portal's "Sign in with Kerberos": a Negotiate handshake, then a session."""
    if not settings.NEPHELE_KRB5_KEYTAB:
        return HttpResponse("Kerberos is not configured\n", status=404, content_type="text/plain")
    token = _token(request.META.get("HTTP_AUTHORIZATION", ""))
    if token is None:
        return HttpResponse(
            "Negotiate\n", status=401, headers={"WWW-Authenticate": "Negotiate"}, content_type="text/plain"
        )
    try:
        principal, reply = accept(token)
        user = user_for(principal)
    except NegotiateError as exc:
        return HttpResponse(f"{exc}\n", status=403, content_type="text/plain")
    login(request, user, backend="tenants.security.ThrottledModelBackend")
    nxt = request.GET.get("next") or "/"
    response = redirect(nxt if url_has_allowed_host_and_scheme(nxt, {request.get_host()}) else "/")
    if reply:
        response["WWW-Authenticate"] = "Negotiate " + base64.b64encode(reply).decode()
    return response


class NegotiateScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes Kerberos authentication."""

    target_class = "tenants.kerberos.NegotiateAuthentication"
    name = "kerberos"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "negotiate", "description": "Kerberos (SPNEGO), when configured"}
