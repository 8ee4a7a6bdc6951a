"""REST representations of compute objects."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from monitoring.models import AuditRecord, Metric
from portal.api import ModelSerializer, Ref, Text
from tenants.models import Project
from tenants.querysets import is_cloud_admin

from ..models import (
    MAX_MEMORY_MB,
    MAX_VCPU,
    BootImage,
    Cluster,
    Host,
    VirtualMachine,
    VMPlacement,
    VMStateChange,
    VMTemplate,
)
from ..states import ACTIONS, RECOVER_OPTIONS, allowed_actions


class ClusterSerializer(ModelSerializer):
    class Meta:
        model = Cluster
        fields = ["id", "name", "placement_policy", "description"]


class HostSerializer(ModelSerializer):
    cluster = Ref(Cluster, allow_null=True, required=False)

    class Meta:
        model = Host
        fields = [
            "id", "name", "cluster", "driver", "uri", "hypervisor", "state", "state_message", "agent", "labels",
            "priority", "total_vcpu", "total_memory_mb", "total_disk_gb", "alloc_vcpu", "alloc_memory_mb",
            "alloc_disk_gb", "free_memory_mb", "cpu_load", "unknown_domains", "last_probe_at", "created_at",
        ]  # fmt: skip
        read_only_fields = [
            "state", "state_message", "total_vcpu", "total_memory_mb", "total_disk_gb", "alloc_vcpu",
            "alloc_memory_mb", "alloc_disk_gb", "free_memory_mb", "cpu_load", "unknown_domains", "last_probe_at",
            "created_at",
        ]  # fmt: skip


class HostActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["enable", "disable", "offline", "confirm_down"],
        help_text="confirm_down: the administrator vouches that a host in ERROR no longer runs its VMs"
        " (powered off by hand); its HA VMs are restarted elsewhere",
    )


def reference(
    name: str, model: Any, action: str = "view", *, required: bool = False, help_text: str = "", directory: str = ""
) -> Ref:
    """An id in a request body, resolved through the access gate (``portal.api.Ref``: a foreign
    object answers 404 naming the field, exactly like a missing one). ``validated_data``
    carries it as ``<name>_id``; ``ids_to_names`` turns it back for the service call, which
    resolves it again when it uses it."""
    return Ref(
        model, action, source=f"{name}_id", required=required, allow_null=not required, help_text=help_text,
        directory=directory,
    )  # fmt: skip


def ids_to_names(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """``validated_data`` with the ``reference`` fields ``names`` under their own names."""
    ids = {f"{n}_id": n for n in names}
    return {ids.get(k, k): v for k, v in data.items()}


# Clusters are infrastructure (no tenant owns one): any project may pin its templates to one.
CLUSTER_PIN = "a placement requirement: any project may pin a template to any cluster"


HOST_PATH = {
    "required": False,
    "trim_whitespace": False,  # the path as given: what the schema's pattern checks is what is stored
    "validators": [RegexValidator(r"^/[^\x00]*$", "an absolute path on the hosts, or blank")],
}


class BootImageSerializer(ModelSerializer):
    project = reference("project", Project, "manage", required=True)

    class Meta:
        model = BootImage
        fields = ["id", "project", "name", "kind", "kernel_path", "initrd_path", "cmdline", "disk_path", "public"]
        extra_kwargs = {"kernel_path": HOST_PATH, "initrd_path": HOST_PATH, "disk_path": HOST_PATH}


class VMTemplateSerializer(ModelSerializer):
    project = reference("project", Project, "manage", required=True)
    boot_image = reference(
        "boot_image", BootImage, help_text="a boot image you may see (your projects', shared or public)"
    )
    cluster = reference("cluster", Cluster, directory=CLUSTER_PIN)

    class Meta:
        model = VMTemplate
        fields = [
            "id", "project", "owner", "name", "description", "vcpu", "memory_mb", "disk_gb", "boot_image",
            "required_labels", "hypervisor", "cluster", "public", "restart_policy", "ha", "graphics",
            "created_at",
        ]  # fmt: skip
        read_only_fields = ["owner", "created_at"]


class VMSerializer(ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = VirtualMachine
        fields = [
            "id", "name", "project", "owner", "template", "vcpu", "memory_mb", "disk_gb", "state", "operation",
            "hv_state", "host", "schedule_message", "last_error", "required_labels", "hypervisor", "cluster",
            "allowed_actions", "created_at", "state_changed_at", "version",
        ]  # fmt: skip
        read_only_fields = fields

    def get_allowed_actions(self, vm: VirtualMachine) -> list[str]:
        user = self.context["request"].user
        return allowed_actions(vm.state, busy=vm.busy, admin=is_cloud_admin(user))


class VMCreateSerializer(serializers.Serializer):
    """Input for creating VMs from a template; sizes default to the template's."""

    name = Text(max_length=63)
    project = Ref(Project, "manage")
    template = Ref(VMTemplate, help_text="a template you may see (your projects', shared or public)")
    count = serializers.IntegerField(default=1, min_value=1, max_value=100)
    vcpu = serializers.IntegerField(required=False, min_value=1, max_value=MAX_VCPU)
    memory_mb = serializers.IntegerField(required=False, min_value=16, max_value=MAX_MEMORY_MB)
    hold = serializers.BooleanField(default=False)
    user_data = Text(
        required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text="cloud-init user-data for the VM's NoCloud seed: #cloud-config (merged with ours), "
        "a script (#!...) or a MIME multipart; at most 16 KiB",
    )  # fmt: skip
    client_token = Text(
        required=False, allow_blank=True, default="", max_length=64,
        help_text="idempotency key (or the Idempotency-Key header): a retry with the same key returns the "
        "VMs of the first request instead of creating more; kept 24 h",
    )  # fmt: skip


class VMContextSerializer(serializers.Serializer):
    """A VM's NoCloud seed as people see it (docs/contextualization.md)."""

    hostname = Text()
    keys = serializers.ListField(child=serializers.DictField(child=Text()))
    user_data_set = serializers.BooleanField()
    user_data_bytes = serializers.IntegerField()
    network_configured = serializers.BooleanField()


class VMDetailSerializer(VMSerializer):
    """One VM with its context (hostname, owner's key fingerprints) and user-data."""

    context = serializers.SerializerMethodField()

    class Meta(VMSerializer.Meta):
        fields = [*VMSerializer.Meta.fields, "user_data", "context"]
        read_only_fields = fields

    @extend_schema_field(VMContextSerializer)
    def get_context(self, vm: VirtualMachine) -> dict[str, Any]:
        from ..services.context import context_summary

        summary = context_summary(vm)
        return VMContextSerializer(summary).data


class ConsoleRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["serial", "vnc"], default="serial",
        help_text="serial: the VM's serial console (xterm.js); vnc: its graphical console (noVNC; the template enables graphics)",
    )  # fmt: skip


class ConsoleTicketSerializer(serializers.Serializer):
    kind = serializers.CharField()
    url = serializers.CharField(help_text="the websocket's path, token included: /ws/console/<vm>/<kind>/?token=…")
    token = serializers.CharField(help_text="one use, for this user, VM and console only")
    expires_at = serializers.DateTimeField(help_text="the token is refused after this (NEPHELE_CONSOLE_TOKEN_TTL_S)")


class ConsoleLogQuerySerializer(serializers.Serializer):
    bytes = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.NEPHELE_CONSOLE_LOG_MAX_BYTES,
        help_text="how much of the log's end (default and most: NEPHELE_CONSOLE_LOG_MAX_BYTES)",
    )


class VMActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS))
    hard = serializers.BooleanField(default=False)
    live = serializers.BooleanField(default=False)
    host = Ref(Host, required=False, allow_null=True, help_text="deploy / migrate: the host (cloud admins)")
    recover = serializers.ChoiceField(choices=list(RECOVER_OPTIONS), required=False, allow_blank=True, default="")
    vcpu = serializers.IntegerField(required=False, min_value=1, max_value=MAX_VCPU)
    memory_mb = serializers.IntegerField(required=False, min_value=16, max_value=MAX_MEMORY_MB)
    version = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1,
        help_text="the VM's version you saw (or send If-Match: \"<version>\"); 409 if it changed since",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["action"] == "recover" and not attrs.get("recover"):
            raise serializers.ValidationError({"recover": f"recover needs one of {', '.join(RECOVER_OPTIONS)}"})
        if attrs["action"] == "resize" and attrs.get("vcpu") is None and attrs.get("memory_mb") is None:
            raise serializers.ValidationError({"vcpu": "resize needs vcpu and/or memory_mb"})
        return attrs


class PlacementSerializer(ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = VMPlacement
        fields = ["id", "host", "start_reason", "end_reason", "started_at", "ended_at", "vcpu", "memory_mb"]


class StateChangeSerializer(ModelSerializer):
    class Meta:
        model = VMStateChange
        fields = ["from_state", "to_state", "reason", "created_at"]


class AuditSerializer(ModelSerializer):
    class Meta:
        model = AuditRecord
        fields = [
            "id", "actor_name", "action", "object_type", "object_id", "object_name", "source_ip", "result",
            "detail", "created_at",
        ]  # fmt: skip


class VMHistorySerializer(serializers.Serializer):
    placements = PlacementSerializer(many=True)
    state_changes = StateChangeSerializer(many=True)


class MetricQuerySerializer(serializers.Serializer):
    """The query string of a metrics series: which series and from when."""

    metric = serializers.ChoiceField(choices=[label for _value, label in Metric.choices], default="cpu_pct")
    hours = serializers.FloatField(default=1, min_value=0.01, max_value=24 * 400, help_text="how far back")
    since = serializers.DateTimeField(required=False, help_text="from this moment instead of hours")


class MetricSeriesSerializer(serializers.Serializer):
    metric = Text()
    resolution_s = serializers.IntegerField(help_text="seconds between points (0: no points)")
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[unix time, value] pairs, oldest first",
    )
