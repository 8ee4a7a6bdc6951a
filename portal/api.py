"""Shared REST API pieces: the error format and helpers for views."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound as DRFNotFound
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.querysets import is_cloud_admin

from .clientip import client_ip as client_ip  # re-exported: views import it from here
from .errors import NotFound, ServiceError
from .schema import VISIBLE


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
        if "unique" in _codes(exc.get_codes()):  # a name (or other unique value) already in use
            response.status_code = status.HTTP_409_CONFLICT
    if response is not None and response.status_code == 401 and settings.NEPHELE_KRB5_KEYTAB:
        # offer Kerberos too: "WWW-Authenticate: Bearer realm=…, Negotiate"
        challenge = response.get("WWW-Authenticate")
        response["WWW-Authenticate"] = f"{challenge}, Negotiate" if challenge else "Negotiate"
    return response


def _codes(codes: Any) -> set[str]:
    """Every error code in DRF's nested ``get_codes()`` answer."""
    if isinstance(codes, dict):
        return set().union(*(_codes(v) for v in codes.values()))
    if isinstance(codes, list):
        return set().union(*(_codes(v) for v in codes))
    return {str(codes)}


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

#: every object in the API is named by its whole-number primary key (a bigint's 18 digits)
ID_REGEX = "[0-9]{1,18}"


class Router(DefaultRouter):
    """The API's router: a detail route matches only a numeric id, so ``/volumes/abc/`` is a
    plain 404 (JSON) before any view or service sees it."""

    def get_lookup_regex(self, viewset: Any, lookup_prefix: str = "") -> str:
        kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
        return f"(?P<{lookup_prefix}{kwarg}>{getattr(viewset, 'lookup_value_regex', ID_REGEX)})"


class Text(serializers.CharField):
    """A string field that takes strings only: DRF's CharField turns ``0`` or ``true`` into
    ``"0"``/``"True"``, which the schema (``type: string``) says is not a valid body.

    A text that may not be blank must hold a character other than white space as either
    Python or JSON Schema sees it (``VISIBLE``; the schema's request bodies say so, see
    ``portal/schema.py``)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value = str(super().to_internal_value(data))
        if not self.allow_blank and not VISIBLE.search(value):
            self.fail("blank")
        return value


class ModelSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """The API's model serializers: text columns become ``Text`` (strings only)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: Text,
        models.TextField: Text,
    }


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
    user = Text(required=False, help_text="share with this user (user name)")


class SharesSerializer(serializers.Serializer):
    projects = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    users = serializers.ListField(child=Text(), read_only=True)


def _whole_number(request: Any, name: str, low: int, high: int, *, cap: bool = False) -> int | None:
    """The query parameter ``name`` (every copy of it) as a whole number in [low, high]: above
    ``high`` it is capped when ``cap``, else refused; None when absent; 400 naming it otherwise."""
    value = None
    for raw in request.query_params.getlist(name):
        if not (raw.isascii() and raw.isdigit()):
            raise serializers.ValidationError({name: ["must be a whole number"]})
        value = int(raw) if len(raw) <= 18 else high + 1  # no int() of a 5,000-digit string
        if value > high and cap:
            value = high
        if not low <= value <= high:
            raise serializers.ValidationError({name: [f"must be between {low} and {high}"]})
    return value


class Pagination(LimitOffsetPagination):
    """limit/offset paging with bounds: ``limit`` is a whole number of at least 1, capped at
    ``max_limit``; an ``offset`` past any real table is refused with 400 naming the field (it
    used to overflow the database)."""

    max_limit = 1000
    max_offset = 10**9

    def get_offset(self, request: Any) -> int:
        return _whole_number(request, self.offset_query_param, 0, self.max_offset) or 0

    def get_limit(self, request: Any) -> int | None:
        return _whole_number(request, self.limit_query_param, 1, self.max_limit, cap=True) or self.default_limit

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.offset_query_param:
                param["schema"] = {"type": "integer", "minimum": 0, "maximum": self.max_offset}
            elif param["name"] == self.limit_query_param:
                param["schema"] = {"type": "integer", "minimum": 1}
                param["description"] = f"rows per page (at most {self.max_limit}: more is capped)"
        return params


class KeysetPagination(CursorPagination):
    """``?cursor=`` paging: a keyset on the primary key, so page 2,000 costs what page 1 does
    and no ``COUNT(*)`` runs (Nova's and NetBox's marker paging)."""

    ordering = "pk"
    page_size_query_param = "limit"
    max_page_size = Pagination.max_limit

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except DRFNotFound:  # no page is behind a cursor this API did not hand out
            raise NotFound("not a cursor this API returned", field="cursor") from None


class Paging(Pagination):
    """Every list: limit/offset (with a count) for compatibility, or a keyset cursor when the
    request names ``cursor`` (empty for the first page; then follow ``next``)."""

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self.get_limit(request)  # either mode: a bad limit or offset is a 400
        self.get_offset(request)
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
