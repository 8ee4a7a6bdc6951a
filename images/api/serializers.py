"""REST representations of images."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.api import ModelSerializer, Ref, Text
from storage.models import Datastore
from tenants.models import Project

from .. import qemu, states
from ..filters import visibility_of
from ..models import Image, ImageType


class ImageSerializer(ModelSerializer):
    visibility = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    owner = Text(source="owner.username", read_only=True)

    class Meta:
        model = Image
        fields = [
            "id", "uuid", "name", "description", "type", "project", "owner", "datastore", "format", "size_bytes",
            "virtual_size_bytes", "sha256", "state", "state_message", "progress", "persistent", "public",
            "publish_requested", "visibility", "upload_size_bytes", "uploaded_bytes", "source_name",
            "derived_from", "actions", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("name", "description", "type", "persistent")]

    @extend_schema_field(serializers.ChoiceField(choices=["private", "shared", "public"]))
    def get_visibility(self, obj: Image) -> str:
        return visibility_of(obj)

    @extend_schema_field(serializers.ListField(child=Text()))
    def get_actions(self, obj: Image) -> list[str]:
        return states.actions_for(obj.state)


# Datastores are infrastructure (no tenant owns one); the image service accepts image datastores only.
DATASTORE_CHOICE = "datastores are the cloud's: any project may store its images in any image datastore"


class ImageCreateSerializer(serializers.Serializer):
    """Start an upload: the image is created in ``uploading``; send the file to ``upload/``."""

    project = Ref(Project, "manage")
    name = Text(max_length=63)
    datastore = Ref(
        Datastore, required=False, directory=DATASTORE_CHOICE, help_text="an image datastore (default: the first)"
    )
    type = serializers.ChoiceField(choices=ImageType.choices, default="os")
    description = Text(required=False, allow_blank=True, default="")
    persistent = serializers.BooleanField(default=False)
    size_bytes = serializers.IntegerField(min_value=0, default=0, help_text="the file's size (checked at the end)")
    sha256 = Text(required=False, allow_blank=True, default="", help_text="checked at the end")
    filename = Text(required=False, allow_blank=True, default="", help_text="display only")


class DatablockSerializer(serializers.Serializer):
    project = Ref(Project, "manage")
    name = Text(max_length=63)
    size_gb = serializers.IntegerField(min_value=1)
    datastore = Ref(Datastore, required=False, directory=DATASTORE_CHOICE)
    format = serializers.ChoiceField(choices=["raw", "qcow2"], default="qcow2")
    description = Text(required=False, allow_blank=True, default="")
    persistent = serializers.BooleanField(default=True)


class ImageActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["enable", "disable", "clone", "convert", "request_publish", "withdraw_publish", "publish", "unpublish"]
    )
    name = Text(required=False, allow_blank=True, default="", help_text="clone / convert: new name")
    datastore = Ref(
        Datastore, required=False, directory=DATASTORE_CHOICE, help_text="clone / convert: target image datastore"
    )
    format = serializers.ChoiceField(choices=list(qemu.DISK_FORMATS), required=False, help_text="convert: target")


class OvaImportSerializer(serializers.Serializer):
    project = Ref(Project, "manage")
    file = serializers.FileField(help_text="an .ova archive, or an .ovf descriptor sent with its disks")
    disks = serializers.ListField(child=serializers.FileField(), required=False, help_text="disk files of an .ovf")
    datastore = Ref(Datastore, required=False, directory=DATASTORE_CHOICE)
    name = Text(required=False, allow_blank=True, default="", help_text="template name")


class OvaImportResultSerializer(serializers.Serializer):
    template = serializers.IntegerField(read_only=True)
    images = ImageSerializer(many=True, read_only=True)

    def to_representation(self, instance: Any) -> Any:
        return super().to_representation(instance)
