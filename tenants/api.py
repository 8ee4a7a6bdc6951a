"""REST API for projects (read-only until the tenancy manager lands)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.errors import NotFound, PermissionDenied
from portal.querysets import is_cloud_admin

from . import credentials, quotas
from .models import ApiToken, Project, SSHKey


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


class ApiTokenSerializer(serializers.ModelSerializer):
    days = serializers.IntegerField(write_only=True, required=False, allow_null=True, default=90)
    project = serializers.IntegerField(required=False, allow_null=True, source="project_id")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "project", "days", "expires_at", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "expires_at", "created_at", "last_used_at", "revoked_at"]


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """The caller's API tokens. Creation answers the secret once (``token``); DELETE revokes."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=self.request.user)

    def create(self, request: Request) -> Response:
        ser = ApiTokenSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        project = None
        if d.get("project_id"):
            project = Project.objects.restrict(request.user, "view").filter(pk=d["project_id"]).first()
            if project is None:
                raise NotFound("project not found", field="project")
        token, secret = credentials.create_token(request.user, name=d["name"], days=d.get("days"), project=project)
        return Response({**ApiTokenSerializer(token).data, "token": secret}, status=201)

    def perform_destroy(self, instance: ApiToken) -> None:
        credentials.revoke_token(self.request.user, instance.pk)


class SSHKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = SSHKey
        fields = ["id", "name", "public_key", "fingerprint", "created_at"]
        read_only_fields = ["fingerprint", "created_at"]


class SSHKeyViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's SSH public keys (validated; the fingerprint is OpenSSH's SHA256 one)."""

    serializer_class = SSHKeySerializer

    def get_queryset(self) -> QuerySet[SSHKey]:
        return SSHKey.objects.filter(user=self.request.user)

    def create(self, request: Request) -> Response:
        ser = SSHKeySerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        key = credentials.add_ssh_key(request.user, **ser.validated_data)
        return Response(SSHKeySerializer(key).data, status=201)

    def perform_destroy(self, instance: SSHKey) -> None:
        credentials.delete_ssh_key(self.request.user, instance.pk)
