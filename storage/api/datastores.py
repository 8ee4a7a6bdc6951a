"""REST API for datastores (``/api/v1/datastores/``): cloud administrators change them, cloud
auditors read them. Every change goes through ``storage.services.datastores``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compute.models import Cluster
from portal.api import ModelSerializer, Ref, Text, client_ip
from tenants.querysets import is_cloud_admin, is_cloud_auditor

from ..models import CloneMode, Datastore, DatastoreDriver, DatastoreKind
from ..services import datastores as svc


class DatastoreSerializer(ModelSerializer):
    """A datastore with its capacity (bytes) and where it is reachable (cluster ids; [] = all)."""

    clusters = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    used_percent = serializers.IntegerField(read_only=True)
    contents = serializers.SerializerMethodField(help_text="what it holds, per kind: {'images': 2}")

    class Meta:
        model = Datastore
        fields = [
            "id", "name", "kind", "driver", "path", "source", "clone_mode", "clusters", "state", "state_message",
            "total_bytes", "used_bytes", "free_bytes", "used_percent", "monitored_at", "contents", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_contents(self, obj: Datastore) -> dict[str, int]:
        return svc.contents(obj) if self.context.get("detail") else {}


class DatastoreWriteSerializer(serializers.Serializer):
    """Input of create (name and kind required) and PATCH (any subset)."""

    name = Text(max_length=63)
    kind = serializers.ChoiceField(choices=DatastoreKind.choices)
    driver = serializers.ChoiceField(choices=DatastoreDriver.choices, default=DatastoreDriver.DIR)
    path = Text(max_length=1024, required=False, allow_blank=True,
                                 help_text="pool target; default NEPHELE_STATE_DIR/datastores/<name>")  # fmt: skip
    source = serializers.JSONField(required=False, help_text="driver settings, see docs/storage.md")
    clone_mode = serializers.ChoiceField(choices=CloneMode.choices, default=CloneMode.COW)
    clusters = Ref(Cluster, many=True, required=False,
                                     help_text="cluster ids whose hosts reach it; empty: every cluster")  # fmt: skip


class DatastoreActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(svc.ACTIONS))


class CanReadOrAdmin(permissions.BasePermission):
    """Cloud administrators; cloud auditors for reading."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if is_cloud_admin(request.user):
            return True
        return request.method in permissions.SAFE_METHODS and is_cloud_auditor(request.user)


class DatastoreViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Datastores: storage pools (dir, LVM, NFS, Ceph RBD) for images and for VMs' disks."""

    serializer_class = DatastoreSerializer
    permission_classes = [CanReadOrAdmin]
    filterset_fields = ["kind", "driver", "state"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Datastore]:
        return Datastore.objects.restrict(self.request.user, "view").prefetch_related("clusters")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "detail": self.action != "list"}

    def _out(self, ds: Datastore, code: int = status.HTTP_200_OK) -> Response:
        ds = self.get_queryset().get(pk=ds.pk)
        return Response(DatastoreSerializer(ds, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=DatastoreWriteSerializer, responses={201: DatastoreSerializer})
    def create(self, request: Request) -> Response:
        ser = DatastoreWriteSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        ds = svc.create_datastore(
            request.user, name=d["name"], kind=d["kind"], driver=d["driver"], path=d.get("path") or None,
            source=d.get("source") or {}, clone_mode=d["clone_mode"], clusters=d.get("clusters") or [],
            ip=client_ip(request),
        )  # fmt: skip
        return self._out(ds, status.HTTP_201_CREATED)

    @extend_schema(request=DatastoreWriteSerializer, responses={200: DatastoreSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        ds = self.get_object()
        ser = DatastoreWriteSerializer(data=request.data, partial=True, context={"request": request})
        ser.is_valid(raise_exception=True)
        changes = {k: v for k, v in ser.validated_data.items() if k in request.data}
        ds = svc.update_datastore(request.user, ds.pk, ip=client_ip(request), **changes)
        return self._out(ds)

    def perform_destroy(self, instance: Datastore) -> None:
        svc.delete_datastore(self.request.user, instance.pk, ip=client_ip(self.request))

    @extend_schema(request=DatastoreActionSerializer, responses={200: DatastoreSerializer, 202: DatastoreSerializer})
    @action(detail=True, methods=["post"], url_path="action")
    def datastore_action(self, request: Request, pk: str | None = None) -> Response:
        """enable | disable | refresh (refresh re-measures the pool in the background: 202)."""
        ds = self.get_object()
        ser = DatastoreActionSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        what = ser.validated_data["action"]
        ds = svc.set_datastore_state(request.user, ds.pk, what, ip=client_ip(request))
        return self._out(ds, status.HTTP_202_ACCEPTED if what == "refresh" else status.HTTP_200_OK)
