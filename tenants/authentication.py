"""REST authentication by API token (``Authorization: Bearer nph_…`` or ``Token nph_…``).

A token scoped to a project confines the request to it: the access gate reads the scope
from the user object (``tenants.querysets.token_project_id``), and account-wide actions refuse
it (docs/authentication.md, "Confined tokens").

When one of the user's organizations requires a second factor and the user has no confirmed
TOTP device, their tokens are refused (403) until they enrol one.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .credentials import resolve_token
from .roles import AUDITOR_GROUP
from .twofactor import has_device, requiring_2fa

ENROL_MESSAGE = (
    "your organization requires a second factor: enrol an authenticator app at /account/2fa/ "
    "(sign in to the portal); your API tokens work again once it is confirmed"
)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be '<Bearer|Token> <token>'")
        token = resolve_token(header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        user = token.user
        # one query for what every request needs to know of its user: is a second factor
        # required (then a confirmed device must exist), and is the user a cloud auditor
        flags = (
            get_user_model()
            .objects.filter(pk=user.pk)
            .annotate(needs_2fa=requiring_2fa(user), auditor=Exists(user.groups.filter(name=AUDITOR_GROUP)))
            .values("needs_2fa", "auditor")
            .first()
        )
        if flags is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        if flags["needs_2fa"] and not has_device(user):
            raise exceptions.PermissionDenied(ENROL_MESSAGE)
        user._nephele_auditor = bool(flags["auditor"])  # read by tenants.querysets.is_cloud_auditor
        user._nephele_token_project = token.project_id
        return user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="nephele"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes token authentication."""

    target_class = "tenants.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token (nph_…) from /api/v1/tokens/"}
