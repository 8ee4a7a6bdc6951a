"""REST API for projects (read-only until the tenancy manager lands)."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from .models import Project


class ProjectSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "organization", "description", "created_at"]


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """The projects the caller belongs to."""

    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.restrict(self.request.user, "view").select_related("organization")
