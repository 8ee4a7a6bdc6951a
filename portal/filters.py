"""Query-string filters of the API's lists (django-filter), with the API's rules:

- a related object's id (``?project=``, ``?network=`` …) is a whole number; one that names
  nothing, or nothing the caller may see, matches no rows (200, an empty list), never a 400
  that would tell a foreign id from a missing one, nor a database overflow;
- the schema says ``integer`` for those, so clients (and schemathesis) send what is accepted.

Every list uses them: ``FilterBackend`` is DRF's DEFAULT_FILTER_BACKENDS and builds each view's
``filterset_fields`` on ``FilterSet``; the hand-written filter sets inherit ``FilterSet`` too.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django_filters import rest_framework as filters
from django_filters.fields import ChoiceField as _ChoiceField
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

MAX_ID = 2**63 - 1  # PostgreSQL's bigint


class _Present:
    """A query parameter given but empty (``?project=``) is refused, not ignored."""

    def clean(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError("must not be empty", code="invalid")
        return super().clean(value)  # type: ignore[misc]


class IdField(_Present, forms.IntegerField):
    pass


class DateTimeField(_Present, IsoDateTimeField):
    pass


class ChoiceField(_Present, _ChoiceField):
    pass


class BooleanField(forms.Field):
    """``true`` or ``false`` (as JSON writes them); anything else is a 400, never ignored."""

    def clean(self, value: Any) -> bool | None:
        if value is None:
            return None
        if value not in ("true", "false"):
            raise forms.ValidationError("must be true or false", code="invalid")
        return value == "true"


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    """An object's id: a whole number; out of any id's range, nothing matches."""

    field_class = IdField

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None and not 0 <= value <= MAX_ID:
            return qs.none()
        return super().filter(qs, value)


class DateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 date and time."""

    field_class = DateTimeField


class ChoiceFilter(filters.ChoiceFilter):
    """One of the field's choices (the schema's enum); an empty value is a 400 like any other."""

    field_class = ChoiceField


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanFilter(filters.BooleanFilter):
    field_class = BooleanField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class FilterSet(filters.FilterSet):
    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.AutoField: {"filter_class": IdFilter},
        models.BigAutoField: {"filter_class": IdFilter},
        models.DateTimeField: {"filter_class": DateTimeFilter},
        models.BooleanField: {"filter_class": BooleanFilter},
    }

    @classmethod
    def filter_for_lookup(cls, field: Any, lookup_type: str) -> tuple[Any, dict[str, Any]]:
        filter_class, params = super().filter_for_lookup(field, lookup_type)
        if filter_class is filters.ChoiceFilter:
            filter_class = ChoiceFilter
        return filter_class, params


class FilterBackend(filters.DjangoFilterBackend):
    filterset_base = FilterSet
