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
    MAX_DISK_GB,
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
            "power_driver", "bmc_address", "bmc_username", "bmc_system", "bmc_verify_tls", "bmc_password_set",
            "power_state", "power_operation", "power_message", "power_checked_at", "maintenance_reason",
        ]  # fmt: skip
        read_only_fields = [
            "state", "state_message", "total_vcpu", "total_memory_mb", "total_disk_gb", "alloc_vcpu",
            "alloc_memory_mb", "alloc_disk_gb", "free_memory_mb", "cpu_load", "unknown_domains", "last_probe_at",
            "created_at", "power_driver", "bmc_address", "bmc_username", "bmc_system", "bmc_verify_tls",
            "power_state", "power_operation", "power_message", "power_checked_at", "maintenance_reason",
        ]  # fmt: skip

    bmc_password_set = serializers.SerializerMethodField(help_text="a BMC password is stored (it is never shown)")

    def get_bmc_password_set(self, host: Host) -> bool:
        return bool(host.bmc_password)


class HostBMCSerializer(serializers.Serializer):
    """The host's power driver and BMC. The password is write-only: left out, the stored one stays."""

    power_driver = serializers.ChoiceField(choices=["none", "redfish", "ipmi"])
    bmc_address = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="",
        help_text="redfish: the service URL (https://bmc.example); ipmi: host or host:port (UDP 623 by default)",
    )  # fmt: skip
    bmc_username = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    bmc_password = serializers.CharField(
        max_length=255, required=False, allow_blank=True, write_only=True, trim_whitespace=False,
        style={"input_type": "password"}, help_text="write-only; stored encrypted, never returned",
    )  # fmt: skip
    bmc_system = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="",
        help_text="redfish: the system's id or path under /redfish/v1/Systems/ (empty: the only one)",
    )  # fmt: skip
    bmc_verify_tls = serializers.BooleanField(required=False, default=True)


class HostPowerSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["on", "off", "reset", "status"],
        help_text="off and reset need a host in MAINTENANCE, DISABLED, OFFLINE or ERROR with no VMs (ERROR: any);"
        " status asks the BMC for the power state",
    )


class HostMaintenanceSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["maintenance", "drain", "activate"],
        help_text="maintenance: no new placements; drain: maintenance, and its VMs migrated away (live where"
        " possible); activate: back to service (powered on first when its BMC reports it off)",
    )
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ResidentVMSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    operation = serializers.CharField()


class MaintenanceReportSerializer(serializers.Serializer):
    host = HostSerializer()
    vms = ResidentVMSerializer(many=True, help_text="the VMs still on the host")
    migrating = serializers.ListField(child=serializers.IntegerField(), help_text="drain: VMs now migrating")
    live = serializers.ListField(child=serializers.IntegerField(), help_text="drain: of those, live")
    stays = serializers.DictField(child=serializers.CharField(), help_text="drain: VMs that stay, with why")


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

    def to_representation(self, vm: VirtualMachine) -> dict[str, Any]:
        """The fields above, read straight from the row (a list of fifty VMs is the API's most
        requested page: field-by-field serialization was most of its CPU). What it returns is
        what the declared fields give — ``tests/compute/test_api_serializers.py`` compares both —
        and fields a subclass adds are serialized by DRF as usual."""
        when = _DATETIME.to_representation
        data: dict[str, Any] = {
            "id": vm.pk, "name": vm.name, "project": vm.project_id, "owner": _owner_name(vm),
            "template": vm.template_id, "vcpu": vm.vcpu, "memory_mb": vm.memory_mb, "disk_gb": vm.disk_gb,
            "state": vm.state, "operation": vm.operation, "hv_state": vm.hv_state,
            "host": _host_name(vm),
            "schedule_message": vm.schedule_message, "last_error": vm.last_error,
            "required_labels": vm.required_labels, "hypervisor": vm.hypervisor, "cluster": vm.cluster_id,
            "allowed_actions": self.get_allowed_actions(vm), "created_at": when(vm.created_at),
            "state_changed_at": when(vm.state_changed_at), "version": vm.version,
        }  # fmt: skip
        if type(self) is VMSerializer:
            return data  # every declared field is above (building ``self.fields`` costs more than the row)
        for name, field in self.fields.items():
            if name not in data and not field.write_only:
                attribute = field.get_attribute(vm)
                data[name] = None if attribute is None else field.to_representation(attribute)
        return data


_DATETIME = serializers.DateTimeField()


def _host_name(vm: VirtualMachine) -> str | None:
    """The host's name: annotated by the list (``host_name``), else through the relation."""
    if vm.host_id is None:
        return None
    annotated = getattr(vm, "host_name", None)
    return annotated if annotated is not None else (vm.host.name if vm.host is not None else None)


def _owner_name(vm: VirtualMachine) -> str:
    annotated = getattr(vm, "owner_name", None)
    return annotated if annotated is not None else vm.owner.username


class VMCreateSerializer(serializers.Serializer):
    """Input for creating VMs from a template (sizes default to the template's) or from an
    image without a template (then ``vcpu`` and ``memory_mb`` are required)."""

    name = Text(max_length=63)
    project = Ref(Project, "manage")
    template = Ref(
        VMTemplate, required=False, allow_null=True,
        help_text="a template you may see (your projects', shared or public); or give `image`",
    )  # fmt: skip
    image = Ref(
        "images.Image", required=False, allow_null=True,
        help_text="instead of a template: an OS image you may see; each VM boots a copy of it",
    )  # fmt: skip
    count = serializers.IntegerField(default=1, min_value=1, max_value=100)
    vcpu = serializers.IntegerField(required=False, min_value=1, max_value=MAX_VCPU)
    memory_mb = serializers.IntegerField(required=False, min_value=16, max_value=MAX_MEMORY_MB)
    disk_gb = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_DISK_GB,
        help_text="with `image`: grow each VM's copy of the image to this size (GiB)",
    )  # fmt: skip
    networks = Ref(
        "network.VirtualNetwork", many=True, required=False,
        help_text="one more NIC on each of these networks (at most 8), beside the template's",
    )  # fmt: skip
    security_groups = Ref(
        "network.SecurityGroup", many=True, required=False,
        help_text="the security groups of those NICs (default: the project's default group)",
    )  # fmt: skip
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("template") is None) == (attrs.get("image") is None):
            raise serializers.ValidationError({"template": "give either template or image"})
        if attrs.get("image") is not None:
            for field in ("vcpu", "memory_mb"):
                if attrs.get(field) is None:
                    raise serializers.ValidationError({field: f"{field} is required when creating from an image"})
        elif attrs.get("disk_gb") is not None:
            raise serializers.ValidationError({"disk_gb": "disk_gb goes with image; a template sets its own disks"})
        return attrs


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
