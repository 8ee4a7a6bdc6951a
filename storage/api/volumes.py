"""REST API for volumes (``/api/v1/volumes/``), VM disks (``/api/v1/vm-disks/?vm=<id>``) and
template disks (``/api/v1/template-disks/?template=<id>``).

Reads start from the access gate; every change goes through ``storage.services.volumes``,
which answers 404 for objects outside the caller's projects and 409 in the wrong state.
Asynchronous operations answer 202 with the volume in its transient state.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compute.models import VirtualMachine, VMTemplate
from portal.api import ModelSerializer, Ref, Text, client_ip
from tenants.models import Project

from ..models import MAX_VOLUME_BYTES, Datastore, TemplateDisk, VMDisk, Volume, VolumeFormat, VolumeSnapshot
from ..services import disks as disk_svc
from ..services import volumes as svc


class VolumeSnapshotSerializer(ModelSerializer):
    class Meta:
        model = VolumeSnapshot
        fields = ["id", "name", "ready", "created_at"]
        read_only_fields = fields


class VolumeSerializer(ModelSerializer):
    """A volume; ``vm`` and ``target`` say where it is attached."""

    snapshots = VolumeSnapshotSerializer(many=True, read_only=True)
    size_gb = serializers.IntegerField(read_only=True)

    class Meta:
        model = Volume
        fields = [
            "id", "uuid", "project", "owner", "name", "description", "datastore", "size_bytes", "size_gb", "format",
            "source_image", "state", "state_message", "operation", "vm", "target", "snapshots", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


# Datastores are infrastructure (no tenant owns one); the services accept the right kind only.
DATASTORE_CHOICE = "datastores are the cloud's: any project may place its disks in any datastore of the kind"


class VolumeCreateSerializer(serializers.Serializer):
    project = Ref(Project, "manage")
    name = Text(max_length=63)
    description = Text(required=False, allow_blank=True, default="")
    size_bytes = serializers.IntegerField(required=False, min_value=1, max_value=MAX_VOLUME_BYTES,
                                          help_text="size of an empty volume; with image: grow the copy to this")  # fmt: skip
    image = Ref("images.Image", required=False, help_text="copy this OS / data block image (yours, shared or public)")
    datastore = Ref(
        Datastore, required=False, directory=DATASTORE_CHOICE, help_text="default: a system datastore with room"
    )
    format = serializers.ChoiceField(choices=VolumeFormat.choices, default=VolumeFormat.QCOW2)


class AttachSerializer(serializers.Serializer):
    vm = Ref(VirtualMachine, "manage")
    target = Text(required=False, allow_blank=True, default="", help_text="vdb … vdz; default next free")


class GrowSerializer(serializers.Serializer):
    size_bytes = serializers.IntegerField(min_value=1, max_value=MAX_VOLUME_BYTES)


class SnapshotSerializer(serializers.Serializer):
    name = Text(max_length=63)


class SnapshotRefSerializer(serializers.Serializer):
    snapshot = Ref(VolumeSnapshot, "manage")


def _valid(ser_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The body validated, its ids resolved through the gate for the caller (``portal.api.Ref``)."""
    ser = ser_class(data=request.data, context={"request": request})
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)


ACCEPTED = {202: VolumeSerializer, 409: OpenApiResponse(description="not allowed in the volume's or VM's state")}


class VolumeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Volumes of the caller's projects: create (empty or from an image), attach, detach, grow,
    snapshot, revert, delete snapshot, delete. Quotas ``volumes`` and ``volume_gb``."""

    serializer_class = VolumeSerializer
    filterset_fields = ["project", "state", "vm"]

    def get_queryset(self) -> QuerySet[Volume]:
        return Volume.objects.restrict(self.request.user, "view").prefetch_related("snapshots").order_by("name", "pk")

    def _answer(self, vol: Volume, code: int = status.HTTP_202_ACCEPTED) -> Response:
        vol = Volume.objects.prefetch_related("snapshots").get(pk=vol.pk)
        return Response(VolumeSerializer(vol).data, status=code)

    @extend_schema(request=VolumeCreateSerializer, responses=ACCEPTED)
    def create(self, request: Request) -> Response:
        d = _valid(VolumeCreateSerializer, request)
        vol = svc.create_volume(
            request.user, project=d["project"], name=d["name"], description=d["description"],
            size_bytes=d.get("size_bytes"), image=d.get("image"), datastore=d.get("datastore"), format=d["format"],
            ip=client_ip(request),
        )  # fmt: skip
        return self._answer(vol)

    @extend_schema(responses=ACCEPTED)
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Delete (refused with 409 naming the VM while attached); the row goes once the file is gone."""
        return self._answer(svc.delete_volume(request.user, pk, ip=client_ip(request)))

    @extend_schema(request=AttachSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def attach(self, request: Request, pk: str | None = None) -> Response:
        """Attach to a VM of the same project: live if it runs (host with disk hotplug), else for its next boot."""
        d = _valid(AttachSerializer, request)
        return self._answer(svc.attach_volume(request.user, pk, d["vm"], target=d["target"], ip=client_ip(request)))

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def detach(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(svc.detach_volume(request.user, pk, ip=client_ip(request)))

    @extend_schema(request=GrowSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def grow(self, request: Request, pk: str | None = None) -> Response:
        d = _valid(GrowSerializer, request)
        return self._answer(svc.grow_volume(request.user, pk, d["size_bytes"], ip=client_ip(request)))

    @extend_schema(request=SnapshotSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def snapshot(self, request: Request, pk: str | None = None) -> Response:
        """A qcow2 internal snapshot; 409 while attached to a running VM."""
        d = _valid(SnapshotSerializer, request)
        snap = svc.snapshot_volume(request.user, pk, d["name"], ip=client_ip(request))
        return self._answer(snap.volume)

    @extend_schema(request=SnapshotRefSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def revert(self, request: Request, pk: str | None = None) -> Response:
        d = _valid(SnapshotRefSerializer, request)
        return self._answer(svc.revert_volume(request.user, pk, d["snapshot"], ip=client_ip(request)))

    @extend_schema(request=SnapshotRefSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"], url_path="delete-snapshot")
    def delete_snapshot(self, request: Request, pk: str | None = None) -> Response:
        d = _valid(SnapshotRefSerializer, request)
        return self._answer(svc.delete_snapshot(request.user, pk, d["snapshot"], ip=client_ip(request)))


class VMDiskSerializer(ModelSerializer):
    """One disk of a VM: an image's overlay or copy, a persistent image, an empty disk, a volume."""

    class Meta:
        model = VMDisk
        fields = [
            "id", "vm", "kind", "target", "image", "volume", "datastore", "format", "clone", "size_bytes",
            "persistent", "volatile", "state", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class SaveAsImageSerializer(serializers.Serializer):
    name = Text(max_length=63)
    datastore = Ref(
        Datastore, required=False, directory=DATASTORE_CHOICE, help_text="image datastore; default: the default one"
    )


class VMDiskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The disks of the caller's VMs (``?vm=<id>``), and "save as image"."""

    serializer_class = VMDiskSerializer
    filterset_fields = ["vm", "kind", "volume", "image"]

    def get_queryset(self) -> QuerySet[VMDisk]:
        return VMDisk.objects.restrict(self.request.user, "view").order_by("vm", "target", "pk")

    @extend_schema(request=SaveAsImageSerializer, responses={202: VMDiskSerializer})
    @action(detail=True, methods=["post"], url_path="save-as-image")
    def save_as_image(self, request: Request, pk: str | None = None) -> Response:
        """Copy the disk into an image datastore as a new image of the VM's project (the VM must be off)."""
        d = _valid(SaveAsImageSerializer, request)
        disk = disk_svc.save_disk_as_image(request.user, pk, name=d["name"], datastore=d.get("datastore"),
                                      ip=client_ip(request))  # fmt: skip
        return Response(VMDiskSerializer(disk).data, status=status.HTTP_202_ACCEPTED)


class TemplateDiskSerializer(ModelSerializer):
    """A disk a template gives its VMs: from ``image``, or empty of ``size_bytes``."""

    class Meta:
        model = TemplateDisk
        fields = ["id", "template", "image", "size_bytes", "position", "cmdline"]
        read_only_fields = fields


class TemplateDiskCreateSerializer(serializers.Serializer):
    template = Ref(VMTemplate, "manage")
    image = Ref("images.Image", required=False, allow_null=True, help_text="yours, shared or public")
    size_bytes = serializers.IntegerField(required=False, min_value=0, default=0)
    cmdline = Text(required=False, allow_blank=True, default="", max_length=1024,
                                    help_text="kernel images: the kernel command line ({vm_name}: the VM's id)")  # fmt: skip


class TemplateDiskViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Template disks (``?template=<id>``) of the templates the caller may see; managed with the template."""

    serializer_class = TemplateDiskSerializer
    filterset_fields = ["template"]

    def get_queryset(self) -> QuerySet[TemplateDisk]:
        from compute.models import VMTemplate

        visible = VMTemplate.objects.restrict(self.request.user, "view").values("pk")
        return TemplateDisk.objects.filter(template__in=visible).order_by("template", "position", "pk")

    @extend_schema(request=TemplateDiskCreateSerializer, responses={201: TemplateDiskSerializer})
    def create(self, request: Request) -> Response:
        d = _valid(TemplateDiskCreateSerializer, request)
        td = disk_svc.add_template_disk(
            request.user, d["template"], image=d.get("image"), size_bytes=d["size_bytes"], cmdline=d["cmdline"]
        )
        return Response(TemplateDiskSerializer(td).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        disk_svc.remove_template_disk(request.user, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
