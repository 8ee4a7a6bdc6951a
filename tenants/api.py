"""REST API for tenancy: organizations, projects, members, users, quotas, tokens and SSH keys."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import ModelSerializer, Ref, Text, client_ip
from portal.errors import NotFound, PermissionDenied
from tenants.querysets import is_cloud_admin, token_project_id

from . import credentials, quotas
from . import services as tenancy
from .models import ApiToken, Membership, Organization, Project, SSHKey


class ProjectSerializer(ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "organization", "description", "created_at"]


class RoleGrantSerializer(serializers.Serializer):
    user = Text(help_text="user name")
    role = Text(allow_null=True, required=False, help_text="null removes the role")

    def target_user(self) -> Any:
        found = get_user_model().objects.filter(username=self.validated_data["user"], is_active=True).first()
        if found is None:
            raise NotFound("user not found", field="user")
        return found


class MembershipSerializer(ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role"]


class UserActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["enable", "disable", "reset-credentials"])
    password = Text(required=False, write_only=True)


class CloudAdminOnly(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return is_cloud_admin(request.user)


class NotConfined(permissions.BasePermission):
    """Account- and cloud-wide endpoints refuse a project-confined token (403)."""

    message = (
        "a token confined to a project cannot use this endpoint (it acts outside the project); "
        "use an unconfined token or sign in to the portal"
    )

    def has_permission(self, request: Any, view: Any) -> bool:
        return token_project_id(request.user) is None


class NotConfinedForWrites(NotConfined):
    """A project-confined token may read (the queryset narrows it to its project), not write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or super().has_permission(request, view)


class QuotaLineSerializer(serializers.Serializer):
    resource = Text()
    label = Text()
    used = serializers.IntegerField()
    limit = serializers.IntegerField(help_text="-1: unlimited")
    percent = serializers.IntegerField()


class QuotaSetSerializer(serializers.Serializer):
    resource = serializers.ChoiceField(choices=quotas.Resource.choices)
    limit = serializers.IntegerField(min_value=-1, max_value=quotas.MAX_LIMIT, help_text="-1: unlimited")
    user = serializers.IntegerField(required=False, allow_null=True)


class QuotaDefaultSetSerializer(serializers.Serializer):
    resource = serializers.ChoiceField(choices=quotas.Resource.choices)
    limit = serializers.IntegerField(min_value=-1, max_value=quotas.MAX_LIMIT, help_text="-1: unlimited")


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """The projects the caller belongs to, with their quota usage."""

    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.restrict(self.request.user, "view").select_related("organization")

    @extend_schema(request=QuotaSetSerializer, responses={200: QuotaLineSerializer(many=True)})
    @action(detail=True, methods=["get", "post"], url_path="quotas", pagination_class=None, filter_backends=[])
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
            tenancy.set_quota_limit(
                request.user, project=project, resource=ser.validated_data["resource"],
                limit=ser.validated_data["limit"], user=user, ip=client_ip(request),
            )  # fmt: skip
        return Response(QuotaLineSerializer(quotas.usage(project), many=True).data)


class ApiTokenSerializer(ModelSerializer):
    days = serializers.IntegerField(
        write_only=True, required=False, allow_null=True, default=None,
        help_text="lifetime, 1 to NEPHELE_TOKEN_MAX_DAYS; absent or null: the maximum (a token created "
        "with a confined token: no later than that token's expiry)",
    )  # fmt: skip
    project = serializers.IntegerField(required=False, allow_null=True, source="project_id")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "project", "days", "expires_at", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "expires_at", "created_at", "last_used_at", "revoked_at"]


def _acting_token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's API tokens. Creation answers the secret once (``token``); DELETE revokes.

    A project-confined token sees and revokes only itself, and the tokens it creates are
    confined to its project and expire no later than it."""

    serializer_class = ApiTokenSerializer
    queryset = ApiToken.objects.none()  # for the schema; the real one is the caller's

    def get_queryset(self) -> QuerySet[ApiToken]:
        qs = ApiToken.objects.filter(user=self.request.user)
        acting = _acting_token(self.request)
        return qs.filter(pk=acting.pk) if credentials.is_confined(acting) and acting is not None else qs

    def create(self, request: Request) -> Response:
        ser = ApiTokenSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        token, secret = credentials.create_token(
            request.user, name=d["name"], days=d.get("days"), project=d.get("project_id"),
            parent=_acting_token(request),
        )  # fmt: skip
        return Response({**ApiTokenSerializer(token).data, "token": secret}, status=201)

    def perform_destroy(self, instance: ApiToken) -> None:
        credentials.revoke_token(self.request.user, instance.pk, acting=_acting_token(self.request))


class SSHKeySerializer(ModelSerializer):
    class Meta:
        model = SSHKey
        fields = ["id", "name", "public_key", "fingerprint", "created_at"]
        read_only_fields = ["fingerprint", "created_at"]


class SSHKeyViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's SSH public keys (validated; the fingerprint is OpenSSH's SHA256 one). A
    project-confined token may list them, not add or delete them."""

    serializer_class = SSHKeySerializer
    permission_classes = [permissions.IsAuthenticated, NotConfinedForWrites]
    queryset = SSHKey.objects.none()  # for the schema; the real one is the caller's

    def get_queryset(self) -> QuerySet[SSHKey]:
        return SSHKey.objects.filter(user=self.request.user)

    def create(self, request: Request) -> Response:
        ser = SSHKeySerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        key = credentials.add_ssh_key(request.user, **ser.validated_data)
        return Response(SSHKeySerializer(key).data, status=201)

    def perform_destroy(self, instance: SSHKey) -> None:
        credentials.delete_ssh_key(self.request.user, instance.pk)


class OrganizationSerializer(ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "description", "enabled", "require_2fa", "created_at"]
        read_only_fields = ["created_at"]


class OrganizationViewSet(viewsets.ModelViewSet):
    """Organizations (tenants). Cloud admins create them; organization admins edit theirs. A
    project-confined token sees its project's organization and changes none."""

    serializer_class = OrganizationSerializer
    permission_classes = [permissions.IsAuthenticated, NotConfinedForWrites]

    def get_queryset(self) -> QuerySet[Organization]:
        return Organization.objects.restrict(self.request.user, "view").order_by("name")

    def create(self, request: Request) -> Response:
        ser = OrganizationSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        org = tenancy.create_organization(request.user, ip=client_ip(request), **ser.validated_data)
        return Response(OrganizationSerializer(org).data, status=201)

    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        org = self.get_object()
        ser = OrganizationSerializer(org, data=request.data, partial=partial)
        ser.is_valid(raise_exception=True)
        org = tenancy.update_organization(request.user, org.pk, ip=client_ip(request), **ser.validated_data)
        return Response(OrganizationSerializer(org).data)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        tenancy.delete_organization(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=204)

    @extend_schema(request=RoleGrantSerializer, responses={200: RoleGrantSerializer})
    @action(detail=True, methods=["post"], url_path="roles")
    def roles(self, request: Request, pk: str | None = None) -> Response:
        """Grant (or with role null, revoke) an organization role."""
        org = self.get_object()
        ser = RoleGrantSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        tenancy.grant_org_role(
            request.user, organization=org, user=ser.target_user(), role=ser.validated_data.get("role"),
            ip=client_ip(request),
        )  # fmt: skip
        return Response(ser.data)


class ProjectWriteSerializer(ModelSerializer):
    organization = Ref("tenants.Organization", "admin", help_text="an organization you administer")

    class Meta:
        model = Project
        fields = ["id", "organization", "name", "description"]


class ProjectAdminViewSet(ProjectViewSet, mixins.CreateModelMixin, mixins.DestroyModelMixin):
    """Projects: create (organization and cloud admins), delete (refused while it owns resources)."""

    @extend_schema(request=ProjectWriteSerializer, responses={201: ProjectSerializer})
    def create(self, request: Request) -> Response:
        if token_project_id(request.user) is not None:
            raise PermissionDenied(
                "a token confined to a project cannot create projects; use an unconfined token or sign in"
            )
        ser = ProjectWriteSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        project = tenancy.create_project(request.user, ip=client_ip(request), **ser.validated_data)
        return Response(ProjectSerializer(project).data, status=201)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        tenancy.delete_project(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=204)

    @extend_schema(request=RoleGrantSerializer, responses={200: MembershipSerializer(many=True)})
    @action(detail=True, methods=["get", "post"], url_path="members", pagination_class=None, filter_backends=[])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """GET: who holds which role. POST: grant a role (role null: remove the member)."""
        project = self.get_object()
        if request.method == "POST":
            ser = RoleGrantSerializer(data=request.data)
            ser.is_valid(raise_exception=True)
            tenancy.grant_project_role(
                request.user, project=project, user=ser.target_user(), role=ser.validated_data.get("role"),
                ip=client_ip(request),
            )  # fmt: skip
        rows = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return Response(MembershipSerializer(rows, many=True).data)


class UserSerializer(ModelSerializer):
    password = Text(write_only=True, required=False, allow_blank=True)

    class Meta:
        model = get_user_model()
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "is_staff",
            "last_login",
            "password",
        ]
        read_only_fields = ["is_active", "is_staff", "last_login"]


class UserAdminViewSet(viewsets.ReadOnlyModelViewSet):
    """Users (cloud admins): create, enable / disable, reset credentials, delete."""

    serializer_class = UserSerializer
    permission_classes = [NotConfined, CloudAdminOnly]  # user administration is cloud-wide

    def get_queryset(self) -> QuerySet[Any]:
        return get_user_model().objects.order_by("username")

    def create(self, request: Request) -> Response:
        ser = UserSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        user = tenancy.create_user(request.user, **ser.validated_data)
        return Response(UserSerializer(user).data, status=201)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        tenancy.delete_user(request.user, self.get_object().pk)
        return Response(status=204)

    @extend_schema(request=UserActionSerializer, responses={200: UserSerializer})
    @action(detail=True, methods=["post"], url_path="action")
    def user_action(self, request: Request, pk: str | None = None) -> Response:
        user = self.get_object()
        ser = UserActionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        act = ser.validated_data["action"]
        if act == "reset-credentials":
            user = tenancy.reset_credentials(request.user, user.pk, password=ser.validated_data.get("password", ""))
        else:
            user = tenancy.set_user_active(request.user, user.pk, act == "enable")
        return Response(UserSerializer(user).data)


class QuotaDefaultViewSet(viewsets.ViewSet):
    """The cloud-wide default limit of every resource, for projects without their own (cloud admins)."""

    permission_classes = [NotConfined, CloudAdminOnly]

    @extend_schema(responses={200: QuotaLineSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response(QuotaLineSerializer(quotas.defaults(), many=True).data)

    @extend_schema(request=QuotaDefaultSetSerializer, responses={200: QuotaLineSerializer(many=True)})
    def create(self, request: Request) -> Response:
        """Set one resource's default; -1 is unlimited."""
        ser = QuotaDefaultSetSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        tenancy.set_quota_default(
            request.user, resource=ser.validated_data["resource"], limit=ser.validated_data["limit"],
            ip=client_ip(request),
        )  # fmt: skip
        return Response(QuotaLineSerializer(quotas.defaults(), many=True).data)
