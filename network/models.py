"""Network tables: VNI pools, virtual networks, address ranges, leases, reservations,
public IP pools, security groups, host network settings, template and VM NICs.

Nothing here calls the outside world; state changes go through ``network.services``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from compute.models import Host, VirtualMachine, VMTemplate, name_validator
from tenants.models import Project
from tenants.querysets import AdminOnlyQuerySet, RestrictedQuerySet, is_cloud_admin, is_cloud_auditor


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private (this project)"
    SHARED = "shared", "Shared (every project may attach)"
    PUBLIC = "public", "Public (external, every project may attach)"


class NetworkQuerySet(RestrictedQuerySet["VirtualNetwork"]):
    """A project's networks; shared and public networks are also visible (and attachable) to all."""

    def restrict(self, user: Any, action: str = "view") -> RestrictedQuerySet[VirtualNetwork]:
        base = super().restrict(user, action)
        if action != "view" or not getattr(user, "is_authenticated", False):
            return base
        if is_cloud_admin(user) or is_cloud_auditor(user):
            return base
        return self.filter(Q(pk__in=base.values("pk")) | Q(visibility__in=[Visibility.SHARED, Visibility.PUBLIC]))


class NetChildQuerySet(RestrictedQuerySet[Any]):
    """Rows that belong to a network (ranges, leases): scoped by the network's project."""

    project_path = "network__project"


class VMChildQuerySet(RestrictedQuerySet[Any]):
    project_path = "vm__project"


class TemplateChildQuerySet(RestrictedQuerySet[Any]):
    project_path = "template__project"


class RuleChildQuerySet(RestrictedQuerySet[Any]):
    project_path = "group__project"


class Isolation(models.TextChoices):
    VXLAN = "vxlan", "VXLAN (overlay between hosts)"
    VLAN = "vlan", "VLAN (802.1Q on the hosts' uplink)"


class VniPool(models.Model):
    """An administrator-defined range of segment ids handed to new networks: VXLAN VNIs or VLAN ids."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    kind = models.CharField(max_length=5, choices=Isolation.choices, default=Isolation.VXLAN)
    first = models.PositiveIntegerField()
    last = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["first"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} {self.first}-{self.last})"


class VirtualNetwork(models.Model):
    """An isolated layer-2 network (one VXLAN segment or one VLAN) with its IPv4/IPv6 subnets."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="networks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    description = models.TextField(blank=True)
    driver = models.CharField(max_length=32, default="linux")
    isolation = models.CharField(max_length=5, choices=Isolation.choices, default=Isolation.VXLAN)
    vni = models.PositiveIntegerField(help_text="segment id from a pool of its kind: the VXLAN VNI or the VLAN id")
    vni_pool = models.ForeignKey(VniPool, on_delete=models.PROTECT, related_name="networks")
    bridge = models.CharField(max_length=15, unique=True, help_text="the bridge on every host")
    mtu = models.PositiveIntegerField(default=1450)
    cidr4 = models.CharField(max_length=18, blank=True, help_text="IPv4 subnet, e.g. 10.0.0.0/24")
    gateway4 = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    cidr6 = models.CharField(max_length=43, blank=True, help_text="IPv6 subnet (/64: addresses from MACs)")
    gateway6 = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True)
    dns = models.CharField(max_length=255, blank=True, help_text="name servers, comma separated")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = NetworkQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_network_name_per_project"),
            models.UniqueConstraint(fields=["isolation", "vni"], name="uniq_network_segment_id"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def dns_list(self) -> list[str]:
        return [d.strip() for d in self.dns.split(",") if d.strip()]


class AddressRange(models.Model):
    """A range of IPv4 addresses of a network that leases are taken from (inclusive)."""

    network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="ranges")
    first = models.GenericIPAddressField(protocol="IPv4")
    last = models.GenericIPAddressField(protocol="IPv4")

    objects = NetChildQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        import ipaddress

        return int(ipaddress.IPv4Address(self.last)) - int(ipaddress.IPv4Address(self.first)) + 1


class Reservation(models.Model):
    """A sub-range of a network's addresses set aside for one project's NICs."""

    network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="reservations")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="ip_reservations")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    first = models.GenericIPAddressField(protocol="IPv4")
    last = models.GenericIPAddressField(protocol="IPv4")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.first}-{self.last})"


class SecurityGroup(models.Model):
    """A set of stateful rules applied to the NICs that join it."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="security_groups")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=63, validators=[name_validator])
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False, help_text="given to NICs that name no group")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_secgroup_name_per_project"),
            models.UniqueConstraint(fields=["project"], condition=Q(is_default=True), name="one_default_secgroup"),
        ]

    def __str__(self) -> str:
        return self.name


class Direction(models.TextChoices):
    INGRESS = "ingress", "Inbound"
    EGRESS = "egress", "Outbound"


class Protocol(models.TextChoices):
    ANY = "any", "Any"
    TCP = "tcp", "TCP"
    UDP = "udp", "UDP"
    ICMP = "icmp", "ICMP / ICMPv6"


class EtherType(models.TextChoices):
    IPV4 = "ipv4", "IPv4"
    IPV6 = "ipv6", "IPv6"


class SecurityGroupRule(models.Model):
    """Allow traffic in one direction from/to a CIDR or the members of another group."""

    group = models.ForeignKey(SecurityGroup, on_delete=models.CASCADE, related_name="rules")
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.INGRESS)
    ethertype = models.CharField(max_length=4, choices=EtherType.choices, default=EtherType.IPV4)
    protocol = models.CharField(max_length=4, choices=Protocol.choices, default=Protocol.ANY)
    port_min = models.PositiveIntegerField(null=True, blank=True)
    port_max = models.PositiveIntegerField(null=True, blank=True)
    cidr = models.CharField(max_length=43, blank=True, help_text="remote addresses; empty with a remote group")
    remote_group = models.ForeignKey(
        SecurityGroup, on_delete=models.CASCADE, null=True, blank=True, related_name="referenced_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RuleChildQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        ports = "" if self.port_min is None else f":{self.port_min}-{self.port_max}"
        remote = self.cidr or f"group {self.remote_group_id}"
        return f"{self.direction} {self.ethertype} {self.protocol}{ports} {remote}"


class PublicIPPool(models.Model):
    """Externally routed addresses an administrator makes available for 1:1 NAT."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    cidr = models.CharField(max_length=18)
    first = models.GenericIPAddressField(protocol="IPv4")
    last = models.GenericIPAddressField(protocol="IPv4")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AdminOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PublicIPQuerySet(RestrictedQuerySet["PublicIP"]):
    pass


class PublicIP(models.Model):
    """A public address a project holds; associated with a NIC it is 1:1 NAT'ed to its IPv4."""

    pool = models.ForeignKey(PublicIPPool, on_delete=models.PROTECT, related_name="addresses")
    address = models.GenericIPAddressField(protocol="IPv4")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="public_ips")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    nic = models.OneToOneField("VMNic", on_delete=models.SET_NULL, null=True, blank=True, related_name="public_ip")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PublicIPQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        constraints = [models.UniqueConstraint(fields=["pool", "address"], name="uniq_public_ip")]

    def __str__(self) -> str:
        return self.address

    @property
    def name(self) -> str:
        return self.address


class HostNetwork(models.Model):
    """How the Linux network driver reaches a host: its underlay address and namespace.

    Hosts without one (the simulated test-driver hosts) get no host-side provisioning.
    """

    host = models.OneToOneField(Host, on_delete=models.CASCADE, related_name="network")
    underlay_ip = models.GenericIPAddressField(help_text="the VXLAN endpoint address of the host")
    netns = models.CharField(max_length=63, blank=True, help_text="network namespace ('' = the host's own)")
    public_interface = models.CharField(max_length=15, blank=True, help_text="where public IPs are answered")
    uplink = models.CharField(max_length=15, blank=True, help_text="the trunk VLAN networks' 802.1Q sub-interfaces use")

    objects = AdminOnlyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.host.name} {self.underlay_ip}"


class TemplateNic(models.Model):
    """A NIC every VM created from the template gets."""

    template = models.ForeignKey(VMTemplate, on_delete=models.CASCADE, related_name="nics")
    network = models.ForeignKey(VirtualNetwork, on_delete=models.PROTECT, related_name="template_nics")
    fixed_ip = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    security_groups = models.ManyToManyField(SecurityGroup, blank=True, related_name="template_nics")
    average_kbps = models.PositiveIntegerField(default=0)
    peak_kbps = models.PositiveIntegerField(default=0)
    burst_kb = models.PositiveIntegerField(default=0)

    objects = TemplateChildQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]


class VMNic(models.Model):
    """A VM's interface on a virtual network: its MAC, its lease and its security groups."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="nics")
    network = models.ForeignKey(VirtualNetwork, on_delete=models.PROTECT, related_name="nics")
    index = models.PositiveSmallIntegerField()
    mac = models.CharField(max_length=17, unique=True)
    security_groups = models.ManyToManyField(SecurityGroup, blank=True, related_name="nics")
    anti_spoofing = models.BooleanField(default=True)
    average_kbps = models.PositiveIntegerField(default=0)
    peak_kbps = models.PositiveIntegerField(default=0)
    burst_kb = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = VMChildQuerySet.as_manager()

    class Meta:
        ordering = ["vm", "index"]
        constraints = [models.UniqueConstraint(fields=["vm", "index"], name="uniq_nic_index")]

    def __str__(self) -> str:
        return f"{self.vm_id}/eth{self.index}"

    @property
    def name(self) -> str:
        return f"eth{self.index}"

    @property
    def tap(self) -> str:
        """The host's device name for this NIC (≤ 15 characters)."""
        return f"nt{self.vm_id}i{self.index}"[:15]

    @property
    def ipv4(self) -> str:
        lease = getattr(self, "lease", None)
        return lease.address if lease is not None else ""

    @property
    def ipv6(self) -> str:
        lease = getattr(self, "lease", None)
        return (lease.ipv6 or "") if lease is not None else ""


class LeaseKind(models.TextChoices):
    NIC = "nic", "NIC"
    HOLD = "hold", "Held"


class Lease(models.Model):
    """One address of a network given to a NIC, or held so that nobody gets it."""

    network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="leases")
    address = models.GenericIPAddressField(protocol="IPv4")
    ipv6 = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True)
    mac = models.CharField(max_length=17, blank=True)
    kind = models.CharField(max_length=4, choices=LeaseKind.choices, default=LeaseKind.NIC)
    nic = models.OneToOneField(VMNic, on_delete=models.CASCADE, null=True, blank=True, related_name="lease")
    reservation = models.ForeignKey(Reservation, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = NetChildQuerySet.as_manager()

    class Meta:
        ordering = ["network", "pk"]
        constraints = [models.UniqueConstraint(fields=["network", "address"], name="uniq_lease_address")]

    def __str__(self) -> str:
        return self.address
