"""REST representations of network objects; writes are validated again by the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from compute.models import Host, VirtualMachine, VMTemplate
from portal.api import ModelSerializer, Ref, Text
from tenants.models import Project

from ..models import (
    AddressRange,
    Direction,
    EtherType,
    HostNetwork,
    Isolation,
    Lease,
    Protocol,
    PublicIP,
    PublicIPPool,
    Reservation,
    SecurityGroup,
    SecurityGroupRule,
    TemplateNic,
    VirtualNetwork,
    Visibility,
    VMNic,
    VniPool,
)
from ..services import ipam


class VniPoolSerializer(ModelSerializer):
    """A pool of segment ids: ``kind`` vxlan (VNIs 1..16777215) or vlan (802.1Q ids 1..4094)."""

    kind = serializers.ChoiceField(choices=Isolation.choices, default=Isolation.VXLAN)

    class Meta:
        model = VniPool
        fields = ["id", "name", "kind", "first", "last", "created_at"]
        read_only_fields = ["created_at"]


class AddressRangeSerializer(ModelSerializer):
    network = Ref(VirtualNetwork, "manage", source="network_id")

    class Meta:
        model = AddressRange
        fields = ["id", "network", "first", "last", "size"]
        read_only_fields = ["size"]


class NetworkSerializer(ModelSerializer):
    project = Ref(Project, "manage", source="project_id")
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    leases_used = serializers.SerializerMethodField()
    leases_total = serializers.SerializerMethodField()
    ranges = AddressRangeSerializer(many=True, read_only=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
    isolation = serializers.ChoiceField(
        choices=Isolation.choices, default=Isolation.VXLAN, help_text="vxlan: vni is the VNI; vlan: vni is the VLAN id"
    )

    class Meta:
        model = VirtualNetwork
        fields = [
            "id", "project", "owner", "name", "description", "driver", "isolation", "vni", "bridge", "mtu", "cidr4", "gateway4",
            "cidr6", "gateway6", "dns", "visibility", "ranges", "leases_used", "leases_total", "created_at",
        ]  # fmt: skip
        read_only_fields = ["owner", "vni", "bridge", "created_at"]
        extra_kwargs = {"gateway4": {"required": False}, "gateway6": {"required": False}}

    def get_leases_used(self, obj: VirtualNetwork) -> int:
        return obj.leases.count()

    def get_leases_total(self, obj: VirtualNetwork) -> int:
        return ipam.total(obj)


class NetworkUpdateSerializer(serializers.Serializer):
    name = Text(required=False)
    description = Text(required=False, allow_blank=True)
    dns = Text(required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class LeaseSerializer(ModelSerializer):
    network = Ref(VirtualNetwork, "manage", source="network_id")
    nic = serializers.IntegerField(source="nic_id", read_only=True)
    vm = serializers.SerializerMethodField()

    class Meta:
        model = Lease
        fields = ["id", "network", "address", "ipv6", "mac", "kind", "nic", "vm", "reservation", "created_at"]
        read_only_fields = ["ipv6", "mac", "kind", "reservation", "created_at"]

    def get_vm(self, obj: Lease) -> int | None:
        return obj.nic.vm_id if obj.nic_id else None


class ReservationSerializer(ModelSerializer):
    network = Ref(VirtualNetwork, source="network_id", help_text="your network, or a shared or public one")
    project = Ref(Project, "manage", source="project_id")

    class Meta:
        model = Reservation
        fields = ["id", "network", "project", "name", "first", "last", "created_at"]
        read_only_fields = ["created_at"]


class RuleSerializer(ModelSerializer):
    group = Ref(SecurityGroup, "manage", source="group_id")
    remote_group = Ref(SecurityGroup, source="remote_group_id", required=False, allow_null=True)
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.INGRESS)
    ethertype = serializers.ChoiceField(choices=EtherType.choices, default=EtherType.IPV4)
    protocol = serializers.ChoiceField(choices=Protocol.choices, default=Protocol.ANY)
    port_min = serializers.IntegerField(required=False, allow_null=True)
    port_max = serializers.IntegerField(required=False, allow_null=True)

    class Meta:
        model = SecurityGroupRule
        fields = ["id", "group", "direction", "ethertype", "protocol", "port_min", "port_max", "cidr", "remote_group"]
        extra_kwargs = {"cidr": {"required": False, "allow_blank": True}}


class SecurityGroupSerializer(ModelSerializer):
    project = Ref(Project, "manage", source="project_id")
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = SecurityGroup
        fields = ["id", "project", "name", "description", "is_default", "rules", "created_at"]
        read_only_fields = ["is_default", "created_at"]
        extra_kwargs = {"description": {"required": False}}


# Pools are infrastructure (no tenant owns one): every project allocates from them.
POOL_DIRECTORY = "public IP pools are the cloud's: every project may allocate from any"


class PublicIPPoolSerializer(ModelSerializer):
    class Meta:
        model = PublicIPPool
        fields = ["id", "name", "cidr", "first", "last", "created_at"]
        read_only_fields = ["created_at"]


class PublicIPSerializer(ModelSerializer):
    project = Ref(Project, "manage", source="project_id")
    pool = Ref(PublicIPPool, source="pool_id", required=False, allow_null=True, directory=POOL_DIRECTORY)
    nic = serializers.IntegerField(source="nic_id", read_only=True)
    private_ip = serializers.SerializerMethodField()

    class Meta:
        model = PublicIP
        fields = ["id", "pool", "address", "project", "nic", "private_ip", "created_at"]
        read_only_fields = ["address", "created_at"]

    def get_private_ip(self, obj: PublicIP) -> str:
        return obj.nic.ipv4 if obj.nic_id else ""


class AssociateSerializer(serializers.Serializer):
    nic = Ref(VMNic, "manage")


class NicSerializer(ModelSerializer):
    vm = Ref(VirtualMachine, "manage", source="vm_id")
    network = Ref(VirtualNetwork, source="network_id", help_text="your network, or a shared or public one")
    ipv4 = Text(read_only=True)
    ipv6 = Text(read_only=True)
    security_groups = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    fixed_ip = serializers.IPAddressField(protocol="IPv4", write_only=True, required=False, allow_null=True)
    reservation = Ref(Reservation, write_only=True, required=False, allow_null=True)
    groups = Ref(SecurityGroup, many=True, write_only=True, required=False)

    class Meta:
        model = VMNic
        fields = [
            "id", "vm", "network", "index", "name", "mac", "ipv4", "ipv6", "security_groups", "anti_spoofing",
            "average_kbps", "peak_kbps", "burst_kb", "fixed_ip", "reservation", "groups", "created_at",
        ]  # fmt: skip
        read_only_fields = ["index", "name", "mac", "anti_spoofing", "created_at"]


class GroupIdsField(serializers.ListField):
    """A list of security group ids (a single id is taken as a list of one)."""

    child = Ref(SecurityGroup)

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(data if isinstance(data, list) else [data])


class NicGroupsSerializer(serializers.Serializer):
    security_groups = GroupIdsField()


class TemplateNicSerializer(ModelSerializer):
    template = Ref(VMTemplate, "manage", source="template_id")
    network = Ref(VirtualNetwork, source="network_id", help_text="your network, or a shared or public one")
    security_groups = Ref(SecurityGroup, many=True, required=False)

    class Meta:
        model = TemplateNic
        fields = ["id", "template", "network", "fixed_ip", "security_groups", "average_kbps", "peak_kbps", "burst_kb"]


class HostNetworkSerializer(ModelSerializer):
    host = Ref(Host, source="host_id")

    class Meta:
        model = HostNetwork
        fields = ["id", "host", "underlay_ip", "netns", "public_interface", "uplink"]


def data(ser: Any) -> dict[str, Any]:
    """A validated serializer's data with ``*_id`` sources renamed back to their field names."""
    out = {}
    for k, v in ser.validated_data.items():
        out[k[:-3] if k.endswith("_id") else k] = v
    return out


class TopologyNetworkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = Text()
    cidr4 = Text(allow_blank=True, allow_null=True)
    cidr6 = Text(allow_blank=True, allow_null=True)
    vni = serializers.IntegerField(allow_null=True)
    isolation = Text()


class TopologyNicSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    network = serializers.IntegerField(read_only=True, help_text="the network's id")
    ipv4 = Text(allow_blank=True, allow_null=True)
    ipv6 = Text(allow_blank=True, allow_null=True)
    mac = Text()
    public_ip = Text(allow_blank=True, help_text="empty: no public IP")


class TopologyVMSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = Text()
    state = Text()
    nics = TopologyNicSerializer(many=True)


class TopologySerializer(serializers.Serializer):
    """The networks of the projects, and their VMs with the NICs on them (the topology page)."""

    networks = TopologyNetworkSerializer(many=True)
    vms = TopologyVMSerializer(many=True)
