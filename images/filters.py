"""Image list filters shared by the API and the pages: type, state, format, visibility,
project and a name search. Visibility is annotated in one query (no per-row lookups)."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from guardian.models import GroupObjectPermission, UserObjectPermission

from portal.filters import CharFilter, ChoiceFilter, FilterSet

from .models import Image, ImageFormat, ImageState, ImageType

VISIBILITY = (("private", "Private"), ("shared", "Shared"), ("public", "Public"))


def with_visibility(qs: QuerySet[Image]) -> QuerySet[Image]:
    """Annotate ``is_shared`` (a per-object grant to a project or a user exists)."""
    ct = ContentType.objects.get_for_model(Image)
    key = Cast(OuterRef("pk"), CharField())
    return qs.annotate(
        is_shared=Exists(GroupObjectPermission.objects.filter(content_type=ct, object_pk=key))
        | Exists(UserObjectPermission.objects.filter(content_type=ct, object_pk=key))
    )


def visibility_of(img: Any) -> str:
    if img.public:
        return "public"
    shared = getattr(img, "is_shared", None)
    if shared is None:
        return str(img.visibility)
    return "shared" if shared else "private"


class ImageFilter(FilterSet):
    type = ChoiceFilter(choices=ImageType.choices)
    state = ChoiceFilter(choices=ImageState.choices)
    format = ChoiceFilter(choices=ImageFormat.choices)
    visibility = ChoiceFilter(choices=VISIBILITY, method="filter_visibility")
    search = CharFilter(method="filter_search", label="name or description contains")
    name = CharFilter(lookup_expr="icontains")

    class Meta:
        model = Image
        fields = ["project", "datastore", "type", "state", "format", "visibility", "name", "search"]

    def filter_visibility(self, qs: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        qs = with_visibility(qs)
        if value == "public":
            return qs.filter(public=True)
        if value == "shared":
            return qs.filter(public=False, is_shared=True)
        return qs.filter(public=False, is_shared=False)

    def filter_search(self, qs: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        return qs.filter(Q(name__icontains=value) | Q(description__icontains=value))
