"""Authorization matrix rows of the network manager (see tests/portal/matrix_extensions.py)."""

from __future__ import annotations

from typing import Any

ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


READ_ANY = E(401, 200, 200, 200, 200, 200)
READ_PROJECT = E(401, 200, 200, 200, 404, 200)
ADMIN_READ = E(401, 403, 403, 403, 403, 200)
ADMIN_WRITE = E(401, 403, 403, 403, 403, 201)
CREATE = E(401, 404, 201, 201, 404, 201)
DELETE = E(401, 404, 204, 204, 404, 204)
CHANGE = E(401, 404, 200, 200, 404, 200)
IN_USE = E(401, 404, 409, 409, 404, 409)

API: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/api/v1/vni-pools/", None, ADMIN_READ),
    ("GET", "/api/v1/vni-pools/{NVP}/", None, ADMIN_READ),
    ("POST", "/api/v1/vni-pools/", {"name": "p2", "first": 5000, "last": 5100}, ADMIN_WRITE),
    ("POST", "/api/v1/vni-pools/", {"name": "vl2", "kind": "vlan", "first": 300, "last": 310}, ADMIN_WRITE),
    ("DELETE", "/api/v1/vni-pools/{NVP}/", None, E(401, 403, 403, 403, 403, 409)),
    ("GET", "/api/v1/networks/", None, READ_ANY),
    ("GET", "/api/v1/networks/{NN}/", None, READ_PROJECT),
    ("GET", "/api/v1/networks/topology/", None, READ_ANY),
    ("POST", "/api/v1/networks/", {"project": "{P}", "name": "n2", "cidr4": "10.1.0.0/24"}, CREATE),
    (
        "POST",
        "/api/v1/networks/",
        {"project": "{P}", "name": "n3", "cidr4": "10.2.0.0/24", "isolation": "vlan"},
        CREATE,
    ),  # fmt: skip
    ("PATCH", "/api/v1/networks/{NN}/", {"dns": "10.0.0.53"}, CHANGE),
    ("DELETE", "/api/v1/networks/{NN}/", None, IN_USE),
    ("GET", "/api/v1/address-ranges/", None, READ_ANY),
    ("GET", "/api/v1/address-ranges/{NR}/", None, READ_PROJECT),
    (
        "POST",
        "/api/v1/address-ranges/",
        {"network": "{NN}", "first": "10.0.0.5", "last": "10.0.0.9"},
        E(401, 404, 400, 400, 404, 400),
    ),  # fmt: skip  # overlaps the subnet's range
    ("DELETE", "/api/v1/address-ranges/{NR}/", None, IN_USE),
    ("GET", "/api/v1/leases/", None, READ_ANY),
    ("GET", "/api/v1/leases/{NL}/", None, READ_PROJECT),
    ("POST", "/api/v1/leases/", {"network": "{NN}", "address": "10.0.0.200"}, CREATE),
    ("DELETE", "/api/v1/leases/{NHL}/", None, DELETE),
    ("GET", "/api/v1/reservations/", None, READ_ANY),
    ("GET", "/api/v1/reservations/{NRS}/", None, READ_PROJECT),
    (
        "POST",
        "/api/v1/reservations/",
        {"network": "{NN}", "project": "{P}", "name": "r2", "first": "10.0.0.100", "last": "10.0.0.110"},
        CREATE,
    ),  # fmt: skip
    ("DELETE", "/api/v1/reservations/{NRS}/", None, DELETE),
    ("GET", "/api/v1/security-groups/", None, READ_ANY),
    ("GET", "/api/v1/security-groups/{NSG}/", None, READ_PROJECT),
    ("POST", "/api/v1/security-groups/", {"project": "{P}", "name": "g2"}, CREATE),
    ("DELETE", "/api/v1/security-groups/{NSG}/", None, DELETE),
    ("GET", "/api/v1/security-group-rules/", None, READ_ANY),
    ("GET", "/api/v1/security-group-rules/{NSR}/", None, READ_PROJECT),
    (
        "POST",
        "/api/v1/security-group-rules/",
        {"group": "{NSG}", "protocol": "tcp", "port_min": 22, "port_max": 22, "cidr": "10.0.0.0/8"},
        CREATE,
    ),  # fmt: skip
    ("DELETE", "/api/v1/security-group-rules/{NSR}/", None, DELETE),
    ("GET", "/api/v1/public-ip-pools/", None, READ_ANY),
    ("GET", "/api/v1/public-ip-pools/{NPP}/", None, READ_ANY),
    (
        "POST",
        "/api/v1/public-ip-pools/",
        {"name": "pp2", "cidr": "198.51.100.0/24", "first": "198.51.100.1", "last": "198.51.100.9"},
        ADMIN_WRITE,
    ),  # fmt: skip
    ("DELETE", "/api/v1/public-ip-pools/{NPP}/", None, E(401, 403, 403, 403, 403, 409)),
    ("GET", "/api/v1/public-ips/", None, READ_ANY),
    ("GET", "/api/v1/public-ips/{NPI}/", None, READ_PROJECT),
    ("POST", "/api/v1/public-ips/", {"project": "{P}"}, CREATE),
    ("POST", "/api/v1/public-ips/{NPI}/associate/", {"nic": "{NIC}"}, CHANGE),
    ("POST", "/api/v1/public-ips/{NPI}/disassociate/", None, CHANGE),
    ("DELETE", "/api/v1/public-ips/{NPI}/", None, DELETE),
    ("GET", "/api/v1/nics/", None, READ_ANY),
    ("GET", "/api/v1/nics/{NIC}/", None, READ_PROJECT),
    ("POST", "/api/v1/nics/", {"vm": "{V}", "network": "{NN}"}, CREATE),
    ("POST", "/api/v1/nics/{NIC}/security-groups/", {"security_groups": "{NSG}"}, CHANGE),
    ("DELETE", "/api/v1/nics/{NIC}/", None, DELETE),
    ("GET", "/api/v1/template-nics/", None, READ_ANY),
    ("GET", "/api/v1/template-nics/{NTN}/", None, READ_PROJECT),
    ("POST", "/api/v1/template-nics/", {"template": "{T}", "network": "{NN}"}, CREATE),
    ("DELETE", "/api/v1/template-nics/{NTN}/", None, DELETE),
    ("GET", "/api/v1/host-networks/", None, ADMIN_READ),
    ("GET", "/api/v1/host-networks/{NHN}/", None, ADMIN_READ),
    ("POST", "/api/v1/host-networks/", {"host": "{H}", "underlay_ip": "10.9.0.2", "uplink": "eth1"}, ADMIN_WRITE),
    ("DELETE", "/api/v1/host-networks/{NHN}/", None, E(401, 403, 403, 403, 403, 204)),
]

PAGE_ANY = E(302, 200, 200, 200, 200, 200)
PAGE_PROJECT = E(302, 200, 200, 200, 404, 200)
# refusals come back as a message on the page the form was on (302), nothing changed
POSTED = E(302, 302, 302, 302, 302, 302)

RULE = {"what": "rule-add", "group": "{NSG}", "protocol": "tcp", "port_min": 22, "port_max": 22, "cidr": "10.0.0.0/8"}
UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/network/", None, PAGE_ANY),
    ("GET", "/network/{NN}/", None, PAGE_PROJECT),
    ("GET", "/network/security-groups/", None, PAGE_ANY),
    ("GET", "/network/public-ips/", None, PAGE_ANY),
    ("GET", "/network/topology/", None, PAGE_ANY),
    ("GET", "/network/admin/", None, E(302, 404, 404, 404, 404, 200)),
    ("POST", "/network/action/", RULE, POSTED),
]
DENIED_CHANGES: dict[tuple[str, str], set[str]] = {("POST", "/network/action/"): {"anon", "viewer", "other"}}


def world(ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any) -> None:
    """A VNI pool and a VLAN pool, a network with a NIC (on the held VM), a hold, a reservation, a security group
    with a rule, a public IP pool with an allocated address, a template NIC, a host's settings."""
    from compute.models import Host, VirtualMachine, VMTemplate
    from network.services import hosts, networks, nics, publicips, secgroups

    pool = networks.create_vni_pool(admin_user, name="vnis", first=100, last=199)
    networks.create_vni_pool(admin_user, name="vlans", kind="vlan", first=100, last=199)
    net = networks.create_network(member, project=project, name="n1", cidr4="10.0.0.0/24", gateway4="10.0.0.1")
    vm = VirtualMachine.objects.filter(project=project).order_by("pk").first()
    if vm is None:
        from compute import services

        template = VMTemplate.objects.filter(project=project).first()
        (vm,) = services.create_vms(member, project=project, template=template, name="netvm", hold=True)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    hold = networks.hold_address(member, net.pk, address="10.0.0.250")
    res = networks.create_reservation(member, net.pk, project=project, name="r1", first="10.0.0.20",
                                      last="10.0.0.29")  # fmt: skip
    group = secgroups.create_group(member, project=project, name="g1")
    rule = secgroups.add_rule(member, group.pk, protocol="tcp", port_min=80, port_max=80, cidr="0.0.0.0/0")
    pp = publicips.create_pool(admin_user, name="pub", cidr="203.0.113.0/24", first="203.0.113.1",
                               last="203.0.113.50")  # fmt: skip
    pip = publicips.allocate(member, project=project)
    template = VMTemplate.objects.filter(project=project).first()
    tn = nics.add_template_nic(admin_user, template.pk, network=net.pk)
    host = Host.objects.order_by("pk").first()
    hn = hosts.set_host_network(admin_user, host=host.pk, underlay_ip="10.9.0.1")
    ids.update(NVP=pool.pk, NN=net.pk, NR=net.ranges.first().pk, NL=nic.lease.pk, NHL=hold.pk, NRS=res.pk,
               NSG=group.pk, NSR=rule.pk, NPP=pp.pk, NPI=pip.pk, NIC=nic.pk, NTN=tn.pk, NHN=hn.pk)  # fmt: skip
