"""Shared REST API pieces: the error format and helpers for views."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound as DRFNotFound
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.querysets import is_cloud_admin

from .clientip import client_ip as client_ip  # re-exported: views import it from here
from .errors import NotFound, ServiceError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service refusals become JSON with the field at fault: {"detail": ..., "field": ...}."""
    if isinstance(exc, ServiceError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
            body[exc.field] = [exc.message]
        return Response(body, status=exc.status)
    response = drf_exception_handler(exc, context)
    if isinstance(exc, ValidationError) and response is not None:
        response.data = _with_detail_and_field(response.data)
    if response is not None and response.status_code == 401 and settings.NEPHELE_KRB5_KEYTAB:
        # offer Kerberos too: "WWW-Authenticate: Bearer realm=…, Negotiate"
        challenge = response.get("WWW-Authenticate")
        response["WWW-Authenticate"] = f"{challenge}, Negotiate" if challenge else "Negotiate"
    return response


def _first_message(value: Any) -> str:
    while isinstance(value, list | dict) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
    return str(value) if value not in ([], {}) else "invalid"


def _with_detail_and_field(data: Any) -> Any:
    """DRF's ``{"vcpu": ["…"]}`` gains ``detail`` and ``field`` (docs/api.md promises both on
    every validation error); the per-field lists stay for clients that read them."""
    if not isinstance(data, dict) or "detail" in data or not data:
        return data
    field, messages = next(iter(data.items()))
    message = _first_message(messages)
    if field in ("non_field_errors", "__all__"):
        return {"detail": message, **data}
    return {"detail": f"{field}: {message}", "field": field, **data}


ACCEPTED = status.HTTP_202_ACCEPTED


class IsCloudAdmin(permissions.BasePermission):
    """Infrastructure endpoints: cloud administrators only."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_cloud_admin(request.user)


class Ref(serializers.PrimaryKeyRelatedField):  # type: ignore[type-arg]
    """An id in a request body, resolved through the access gate for the request's user.

    ``Model.objects.restrict(request.user, action)`` decides (issue 12: a body id must never
    reach an object its caller may not use); a foreign id answers **404 naming the field**,
    exactly like a missing one (and like a foreign id in the URL). The validated value is the
    primary key, so services keep taking ids and resolve them once more when they use them
    (time of use). ``many=True`` gives a list of ids, each resolved the same way.

    ``directory``: the id names something that is deliberately not the caller's own — a
    share's recipient project, infrastructure a template may be pinned to — so any signed-in
    caller may name any existing one and the service decides what it may do with it. The
    value is the reason, and ``tests/portal/test_reference_completeness.py`` lists every such
    field, so a new one is a reviewed decision. Serializers must be built with the request in
    their context (``context={"request": request}``); without it nothing resolves (404).
    """

    def __init__(self, model: Any = None, action: str = "view", *, directory: str = "", **kwargs: Any) -> None:
        self._model = model  # a model or "app_label.Model" (as in a ForeignKey: no import between apps)
        self.action = action
        self.directory = directory
        self._ready = False
        super().__init__(**kwargs)
        self._ready = True

    @property  # type: ignore[override]
    def queryset(self) -> Any:
        """An empty queryset of the model: only for readers of the field (the OpenAPI schema
        takes the id's type from it); resolving always goes through ``get_queryset``."""
        return self.model._default_manager.none() if self._ready and not self.read_only else None

    @queryset.setter
    def queryset(self, value: Any) -> None:
        if value is not None:
            raise TypeError("Ref resolves through the access gate; give it a model, not a queryset")

    @property
    def model(self) -> Any:
        if isinstance(self._model, str):
            from django.apps import apps

            self._model = apps.get_model(self._model)
        return self._model

    @property
    def ref_field(self) -> str:
        """The body field at fault (a list's items report the list's name)."""
        return self.field_name or getattr(self.parent, "field_name", "") or "id"

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if self.directory:
            ok = user is not None and user.is_authenticated
            return self.model._default_manager.all() if ok else self.model._default_manager.none()
        return self.model.objects.restrict(user, self.action)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            pk = int(data)
        except (TypeError, ValueError):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if pk < 1 or pk > 2**63 - 1 or not self.get_queryset().filter(pk=pk).exists():
            what = str(self.model._meta.verbose_name)
            raise NotFound(f"{what} not found", field=self.ref_field)
        return pk

    def to_representation(self, value: Any) -> Any:
        return getattr(value, "pk", value)


# A share names the project it is for: not the caller's own, by its nature.
SHARE_RECIPIENT = "a share's recipient: any project may be named; the sharing service decides"


class ShareSerializer(serializers.Serializer):
    project = Ref(
        "tenants.Project",
        required=False,
        directory=SHARE_RECIPIENT,
        help_text="share with every member of this project",
    )
    user = serializers.CharField(required=False, help_text="share with this user (user name)")


class SharesSerializer(serializers.Serializer):
    projects = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    users = serializers.ListField(child=serializers.CharField(), read_only=True)


class Pagination(LimitOffsetPagination):
    """limit/offset paging with bounds: ``limit`` is capped at ``max_limit``; an ``offset`` past
    any real table is refused with 400 naming the field (it used to overflow the database)."""

    max_limit = 1000
    max_offset = 10**9

    def get_offset(self, request: Any) -> int:
        raw = request.query_params.get(self.offset_query_param, "0")
        try:
            offset = int(raw)
        except (TypeError, ValueError):
            raise serializers.ValidationError({"offset": ["must be a whole number"]}) from None
        if not 0 <= offset <= self.max_offset:
            raise serializers.ValidationError({"offset": [f"must be between 0 and {self.max_offset}"]})
        return offset


class KeysetPagination(CursorPagination):
    """``?cursor=`` paging: a keyset on the primary key, so page 2,000 costs what page 1 does
    and no ``COUNT(*)`` runs (Nova's and NetBox's marker paging)."""

    ordering = "pk"
    page_size_query_param = "limit"
    max_page_size = Pagination.max_limit

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except DRFNotFound:
            raise serializers.ValidationError({"cursor": ["not a cursor this API returned"]}) from None


class Paging(Pagination):
    """Every list: limit/offset (with a count) for compatibility, or a keyset cursor when the
    request names ``cursor`` (empty for the first page; then follow ``next``)."""

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self.keyset: KeysetPagination | None = None
        if KeysetPagination.cursor_query_param in request.query_params:
            self.keyset = KeysetPagination()
            return self.keyset.paginate_queryset(queryset, request, view)
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data: Any) -> Response:
        if self.keyset is not None:
            return self.keyset.get_paginated_response(data)
        return super().get_paginated_response(data)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        cursor = {
            "name": KeysetPagination.cursor_query_param,
            "required": False,
            "in": "query",
            "description": "keyset paging: empty for the first page, then the `next` link's cursor",
            "schema": {"type": "string"},
        }
        return [*super().get_schema_operation_parameters(view), cursor]
