"""Query-string filters of the API's lists (django-filter), with the API's rules:

- a related object's id (``?project=``, ``?network=`` …) is a whole number; one that names
  nothing, or nothing the caller may see, matches no rows (200, an empty list), never a 400
  that would tell a foreign id from a missing one, nor a database overflow;
- the schema says ``integer`` for those, so clients (and schemathesis) send what is accepted.

Every list uses them: ``FilterBackend`` is DRF's DEFAULT_FILTER_BACKENDS and builds each view's
``filterset_fields`` on ``FilterSet``; the hand-written filter sets inherit ``FilterSet`` too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
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


def in_utc(moment: datetime) -> datetime:
    """``moment`` as UTC (the database is sent no offset it might refuse: PostgreSQL takes at
    most ±15:59 and no fractional seconds); ``ValueError`` if it leaves the calendar there."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment lies outside years 1 to 9999 in UTC") from None


class DateTimeField(_Present, IsoDateTimeField):
    def clean(self, value: Any) -> Any:
        moment = super().clean(value)
        if moment is None:
            return None
        try:
            return in_utc(moment)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class ChoiceField(_Present, _ChoiceField):
    pass


class TextField(forms.CharField):
    """Any text, NUL included: a text no row can hold matches no row (``FilterSet``) instead
    of a 400 the schema (``type: string``) would not explain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]


class PresentTextField(_Present, TextField):
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


class CharFilter(filters.CharFilter):
    """Text (a name, a type, a search): a value with a NUL matches nothing."""

    field_class = TextField


class PresentCharFilter(CharFilter):
    """Text that means nothing empty (a list of states): ``?state=`` is a 400 naming it."""

    field_class = PresentTextField


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
        models.CharField: {"filter_class": CharFilter},
        models.TextField: {"filter_class": CharFilter},
        models.SlugField: {"filter_class": CharFilter},
    }

    @classmethod
    def filter_for_lookup(cls, field: Any, lookup_type: str) -> tuple[Any, dict[str, Any]]:
        filter_class, params = super().filter_for_lookup(field, lookup_type)
        if filter_class is filters.ChoiceFilter:
            filter_class = ChoiceFilter
        elif filter_class is filters.CharFilter:
            filter_class = CharFilter
        return filter_class, params

    def filter_queryset(self, queryset: Any) -> Any:
        if any(isinstance(v, str) and "\x00" in v for v in self.form.cleaned_data.values()):
            return queryset.none()  # no column holds a NUL (PostgreSQL text cannot)
        return super().filter_queryset(queryset)


class FilterBackend(filters.DjangoFilterBackend):
    filterset_base = FilterSet
