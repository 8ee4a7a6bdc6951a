"""REST API for projects (read-only until the tenancy manager lands)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.errors import NotFound, PermissionDenied
from portal.querysets import is_cloud_admin

from . import quotas
from .models import Project


class ProjectSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "organization", "description", "created_at"]


class QuotaLineSerializer(serializers.Serializer):
    resource = serializers.CharField()
    label = serializers.CharField()
    used = serializers.IntegerField()
    limit = serializers.IntegerField(help_text="-1: unlimited")
    percent = serializers.IntegerField()


class QuotaSetSerializer(serializers.Serializer):
    resource = serializers.ChoiceField(choices=quotas.Resource.choices)
    limit = serializers.IntegerField(min_value=-1)
    user = serializers.IntegerField(required=False, allow_null=True)


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """The projects the caller belongs to, with their quota usage."""

    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.restrict(self.request.user, "view").select_related("organization")

    @extend_schema(request=QuotaSetSerializer, responses={200: QuotaLineSerializer(many=True)})
    @action(detail=True, methods=["get", "post"], url_path="quotas")
    def quotas(self, request: Request, pk: str | None = None) -> Response:
        """GET: usage and limit per resource. POST (cloud admins): set a limit."""
        project = self.get_object()
        if request.method == "POST":
            if not is_cloud_admin(request.user):
                raise PermissionDenied("only cloud administrators set quotas")
            ser = QuotaSetSerializer(data=request.data)
            ser.is_valid(raise_exception=True)
            user = None
            if ser.validated_data.get("user"):
                user = get_user_model().objects.filter(pk=ser.validated_data["user"]).first()
                if user is None:
                    raise NotFound("user not found", field="user")
            quotas.set_limit(project, ser.validated_data["resource"], ser.validated_data["limit"], user)
        return Response(QuotaLineSerializer(quotas.usage(project), many=True).data)
