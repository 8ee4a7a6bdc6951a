"""Network services: networks, IPAM, reservations, security groups, public IPs, NICs and the
VM hooks — through the services, against PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services as compute
from network.models import Lease, SecurityGroupRule, VirtualNetwork, VMNic
from network.services import networks, nics, publicips, secgroups
from network.vmnics import network_config, nic_specs
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants import quotas

from .factories import make_network, vni_pool

pytestmark = pytest.mark.django_db


def _usage(project: Any, resource: str) -> int:
    return next(q.used for q in quotas.usage(project) if q.resource == resource)


def test_create_network_takes_next_vni_and_whole_subnet(member: Any, project: Any) -> None:
    a = make_network(member, project, "a", "10.0.0.0/24")
    b = make_network(member, project, "b", "10.0.1.0/24")
    assert (a.vni, b.vni) == (1000, 1001)
    assert a.bridge == "nphb1000"
    assert [(r.first, r.last) for r in a.ranges.all()] == [("10.0.0.1", "10.0.0.254")]
    assert _usage(project, "networks") == 2


def test_overlapping_cidr_in_one_project_is_refused_and_changes_nothing(member: Any, project: Any) -> None:
    make_network(member, project, "a", "10.0.0.0/16")
    with pytest.raises(InvalidInput) as exc:
        make_network(member, project, "b", "10.0.5.0/24")
    assert exc.value.field == "cidr4" and "overlaps" in exc.value.message
    assert VirtualNetwork.objects.count() == 1 and _usage(project, "networks") == 1


def test_same_cidr_in_another_project_is_fine(member: Any, project: Any, other_tenant: Any) -> None:
    make_network(member, project, "a", "10.0.0.0/24")
    other_project = other_tenant.memberships.first().project
    net = make_network(other_tenant, other_project, "a", "10.0.0.0/24")
    assert net.vni == 1001


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"cidr4": "10.0.0.0/24", "gateway4": "10.0.1.1"}, "gateway4"),
        ({"cidr4": "10.0.0.0/24", "gateway4": "10.0.0.255"}, "gateway4"),
        ({"cidr4": "10.0.0.1/24"}, "cidr4"),
        ({"cidr4": "10.0.0.0/31"}, "cidr4"),
        ({"cidr4": "10.0.0.0/24", "mtu": 10000}, "mtu"),
        ({"cidr4": "10.0.0.0/24", "dns": "1.1.1.1, nope"}, "dns"),
        ({"cidr4": "", "cidr6": "fd00::/64", "gateway6": "fd01::1"}, "gateway6"),
    ],
)
def test_bad_network_input_names_the_field(member: Any, project: Any, kw: dict[str, Any], field: str) -> None:
    vni_pool()
    kw.setdefault("gateway4", None)
    with pytest.raises(InvalidInput) as exc:
        networks.create_network(member, project=project, name="n", **kw)
    assert exc.value.field == field
    assert VirtualNetwork.objects.count() == 0


def test_no_vni_pool_is_a_clear_error(member: Any, project: Any) -> None:
    with pytest.raises(Conflict) as exc:
        networks.create_network(member, project=project, name="n", cidr4="10.0.0.0/24")
    assert "VNI pool" in exc.value.message


def test_vni_pool_exhausted(member: Any, project: Any) -> None:
    vni_pool(5, 5)
    make_network(member, project, "a", "10.0.0.0/24")
    with pytest.raises(Conflict, match="exhausted"):
        make_network(member, project, "b", "10.0.1.0/24")


def test_only_admins_share_networks_and_define_pools(member: Any, project: Any, admin_user: Any) -> None:
    vni_pool()
    with pytest.raises(PermissionDenied):
        networks.create_network(member, project=project, name="n", cidr4="10.0.0.0/24", visibility="shared")
    with pytest.raises(PermissionDenied):
        networks.create_vni_pool(member, name="p", first=1, last=9)
    net = networks.create_network(admin_user, project=project, name="n", cidr4="10.0.0.0/24", visibility="shared")
    assert net.visibility == "shared"


def test_shared_network_visible_to_other_tenant(admin_user: Any, project: Any, other_tenant: Any) -> None:
    vni_pool()
    net = networks.create_network(admin_user, project=project, name="n", cidr4="10.0.0.0/24", visibility="public")
    assert VirtualNetwork.objects.restrict(other_tenant, "view").filter(pk=net.pk).exists()
    assert not VirtualNetwork.objects.restrict(other_tenant, "manage").filter(pk=net.pk).exists()


def test_network_quota(member: Any, project: Any) -> None:
    quotas.set_limit(project, "networks", 1)
    make_network(member, project, "a", "10.0.0.0/24")
    with pytest.raises(quotas.QuotaExceeded):
        make_network(member, project, "b", "10.0.1.0/24")
    assert VirtualNetwork.objects.count() == 1


def test_ranges_within_subnet_and_not_overlapping(member: Any, project: Any) -> None:
    net = make_network(member, project, "a", "10.0.0.0/24")
    with pytest.raises(InvalidInput, match="overlaps"):
        networks.add_range(member, net.pk, first="10.0.0.10", last="10.0.0.20")
    with pytest.raises(InvalidInput) as exc:
        networks.add_range(member, net.pk, first="10.0.1.10", last="10.0.1.20")
    assert exc.value.field == "first"
    with pytest.raises(InvalidInput, match="comes after"):
        networks.add_range(member, net.pk, first="10.0.0.20", last="10.0.0.10")


def _vm(member: Any, project: Any, template: Any, name: str = "vm") -> Any:
    (vm,) = compute.create_vms(member, project=project, template=template, name=name, hold=True)
    return vm


def test_nic_gets_first_free_address_skipping_gateway(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project, "a", "10.0.0.0/24", cidr6="fd00:1::/64")
    vm = _vm(member, project, template)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    assert nic.ipv4 == "10.0.0.2"
    assert nic.ipv6.startswith("fd00:1::") and nic.mac.startswith("02:4e:")
    assert nic.security_groups.get().is_default
    assert _usage(project, "ip_leases") == 1


def test_fixed_ip_taken_twice_is_conflict(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    nics.attach_nic(member, _vm(member, project, template, "a").pk, network=net.pk, fixed_ip="10.0.0.50")
    vm2 = _vm(member, project, template, "b")
    with pytest.raises(Conflict, match="already leased"):
        nics.attach_nic(member, vm2.pk, network=net.pk, fixed_ip="10.0.0.50")
    with pytest.raises(InvalidInput) as exc:
        nics.attach_nic(member, vm2.pk, network=net.pk, fixed_ip="10.0.9.50")
    assert exc.value.field == "fixed_ip"
    assert VMNic.objects.filter(vm=vm2).count() == 0


def test_exhausted_range_is_clear_error_and_changes_nothing(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project, "a", "10.0.0.0/29")  # .1 gateway, .2-.6 leasable
    for i in range(5):
        nics.attach_nic(member, _vm(member, project, template, f"v{i}").pk, network=net.pk)
    vm = _vm(member, project, template, "last")
    before = (Lease.objects.count(), _usage(project, "ip_leases"))
    with pytest.raises(Conflict, match="exhausted"):
        nics.attach_nic(member, vm.pk, network=net.pk)
    assert (Lease.objects.count(), _usage(project, "ip_leases")) == before


def test_hold_and_reservation(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    networks.hold_address(member, net.pk, address="10.0.0.2")
    res = networks.create_reservation(member, net.pk, project=project, name="r", first="10.0.0.3", last="10.0.0.4")
    nic = nics.attach_nic(member, _vm(member, project, template, "a").pk, network=net.pk)
    assert nic.ipv4 == "10.0.0.5"  # .2 held, .3-.4 reserved
    nic2 = nics.attach_nic(member, _vm(member, project, template, "b").pk, network=net.pk, reservation=res.pk)
    assert nic2.ipv4 == "10.0.0.3"
    with pytest.raises(InvalidInput, match="overlaps"):
        networks.create_reservation(member, net.pk, project=project, name="r2", first="10.0.0.4", last="10.0.0.9")
    with pytest.raises(Conflict):
        networks.delete_reservation(member, res.pk)


def test_delete_network_with_leases_refused(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    vm = _vm(member, project, template)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    with pytest.raises(Conflict, match="leases"):
        networks.delete_network(member, net.pk)
    assert VirtualNetwork.objects.filter(pk=net.pk).exists()
    nics.detach_nic(member, nic.pk)
    assert _usage(project, "ip_leases") == 0
    networks.delete_network(member, net.pk)
    assert not VirtualNetwork.objects.filter(pk=net.pk).exists() and _usage(project, "networks") == 0


def test_template_nics_follow_vm_creation_and_are_freed_at_done(member: Any, project: Any, template: Any,
                                                                django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    net = make_network(member, project)
    nics.add_template_nic(member, template.pk, network=net.pk, average_kbps=1250)
    vms = compute.create_vms(member, project=project, template=template, name="t", count=2, hold=True)
    assert [len(nic_specs(vm)) for vm in vms] == [1, 1]
    spec = nic_specs(vms[0])[0]
    assert spec.bridge == net.bridge and spec.average_kbps == 1250 and spec.plan is None  # simulated: no host plan
    assert _usage(project, "ip_leases") == 2 and _usage(project, "nic_mbps") == 2 * 11
    cfg = network_config(vms[0])
    assert cfg["ethernets"]["eth0"]["addresses"] == [f"{vms[0].nics.get().ipv4}/24"]
    with django_capture_on_commit_callbacks(execute=False):
        compute.perform_action(member, vms[0].pk, compute.ActionRequest(action="terminate"))
    vms[0].refresh_from_db()
    assert vms[0].state == "DONE"
    assert VMNic.objects.filter(vm=vms[0]).count() == 0 and _usage(project, "ip_leases") == 1


def test_fixed_ip_template_refuses_several_vms(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    nics.add_template_nic(member, template.pk, network=net.pk, fixed_ip="10.0.0.9")
    with pytest.raises(InvalidInput) as exc:
        compute.create_vms(member, project=project, template=template, name="t", count=2, hold=True)
    assert exc.value.field == "count"


def test_rule_validation(member: Any, project: Any) -> None:
    g = secgroups.create_group(member, project=project, name="web")
    for kw, field in [
        ({"protocol": "tcp", "port_min": 80, "port_max": 22, "cidr": "0.0.0.0/0"}, "port_max"),
        ({"protocol": "tcp", "port_min": 0, "port_max": 22, "cidr": "0.0.0.0/0"}, "port_min"),
        ({"protocol": "udp", "port_min": 1, "port_max": 70000, "cidr": "0.0.0.0/0"}, "port_max"),
        ({"protocol": "icmp", "port_min": 1, "cidr": "0.0.0.0/0"}, "port_min"),
        ({"protocol": "tcp", "cidr": "not-a-net"}, "cidr"),
        ({"protocol": "tcp", "ethertype": "ipv6", "cidr": "10.0.0.0/8"}, "cidr"),
        ({"protocol": "tcp"}, "cidr"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            secgroups.add_rule(member, g.pk, **kw)
        assert exc.value.field == field, kw
    assert SecurityGroupRule.objects.filter(group=g).count() == 0
    rule = secgroups.add_rule(member, g.pk, protocol="tcp", port_min=22, port_max=22, cidr="192.168.0.0/24")
    assert str(rule) == "ingress ipv4 tcp:22-22 192.168.0.0/24"


def test_default_group_lets_members_talk(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    a = nics.attach_nic(member, _vm(member, project, template, "a").pk, network=net.pk)
    b = nics.attach_nic(member, _vm(member, project, template, "b").pk, network=net.pk)
    group = a.security_groups.get()
    ingress = group.rules.get(direction="ingress", ethertype="ipv4")
    assert secgroups.remote_addresses(ingress) == tuple(sorted([f"{a.ipv4}/32", f"{b.ipv4}/32"]))
    with pytest.raises(Conflict):
        secgroups.delete_group(member, group.pk)


def test_public_ip_life_cycle(member: Any, project: Any, admin_user: Any, template: Any) -> None:
    publicips.create_pool(admin_user, name="pub", cidr="203.0.113.0/24", first="203.0.113.10", last="203.0.113.11")
    net = make_network(member, project)
    nic = nics.attach_nic(member, _vm(member, project, template).pk, network=net.pk)
    pip = publicips.allocate(member, project=project)
    assert pip.address == "203.0.113.10" and _usage(project, "public_ips") == 1
    publicips.associate(member, pip.pk, nic_id=nic.pk)
    pip2 = publicips.allocate(member, project=project)
    with pytest.raises(Conflict, match="already"):
        publicips.associate(member, pip2.pk, nic_id=nic.pk)
    with pytest.raises(Conflict, match="exhausted"):
        publicips.allocate(member, project=project)
    publicips.disassociate(member, pip.pk)
    publicips.release(member, pip.pk)
    assert _usage(project, "public_ips") == 1


def test_foreign_objects_are_not_found(member: Any, project: Any, other_tenant: Any) -> None:
    net = make_network(member, project)
    with pytest.raises(NotFound):
        networks.delete_network(other_tenant, net.pk)
    with pytest.raises(NotFound):
        networks.add_range(other_tenant, net.pk, first="10.0.0.1", last="10.0.0.2")


def test_lease_quota_refuses_and_changes_nothing(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project)
    quotas.set_limit(project, "ip_leases", 1)
    nics.attach_nic(member, _vm(member, project, template, "a").pk, network=net.pk)
    vm = _vm(member, project, template, "b")
    with pytest.raises(quotas.QuotaExceeded) as exc:
        nics.attach_nic(member, vm.pk, network=net.pk)
    assert exc.value.field == "ip_leases"
    assert VMNic.objects.filter(vm=vm).count() == 0 and Lease.objects.count() == 1


def test_public_ip_quota(member: Any, project: Any, admin_user: Any) -> None:
    publicips.create_pool(admin_user, name="pub", cidr="203.0.113.0/24", first="203.0.113.10", last="203.0.113.20")
    quotas.set_limit(project, "public_ips", 0)
    with pytest.raises(quotas.QuotaExceeded):
        publicips.allocate(member, project=project)


def test_rule_change_refreshes_placed_members_on_their_host(member: Any, project: Any, template: Any,
                                                             make_sim_host: Any,
                                                             django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    import base64
    import json

    import redis
    from django.conf import settings

    from network.models import HostNetwork

    host = make_sim_host("nh")
    HostNetwork.objects.create(host=host, underlay_ip="192.0.2.10", netns="nh-ns")  # settings only: no traffic here
    net = make_network(member, project)
    group = secgroups.create_group(member, project=project, name="web")
    (vm,) = compute.create_vms(member, project=project, template=template, name="placed")
    nic = nics.attach_nic(member, vm.pk, network=net.pk, security_groups=[group.pk])
    compute.place_vm(vm.pk, host_id=host.pk)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = f"host.{host.pk}"
    broker.delete(queue)
    with django_capture_on_commit_callbacks(execute=True):
        secgroups.add_rule(member, group.pk, protocol="tcp", port_min=22, port_max=22, cidr="0.0.0.0/0")
    messages = [json.loads(m) for m in broker.lrange(queue, 0, -1)]  # the real broker's queue of the host
    broker.delete(queue)
    refreshes = [m for m in messages if m["headers"]["task"] == "hostagent.plug_port"]
    assert len(refreshes) == 1, messages
    (plan,) = json.loads(base64.b64decode(refreshes[0]["body"]))[0]  # the plain plan, for a DB-less agent
    assert plan["mac"] == nic.mac and any(r["port_min"] == 22 for r in plan["rules"])


def test_public_template_with_a_private_network_is_refused_elsewhere(member: Any, project: Any, template: Any,
                                                                      other_tenant: Any) -> None:  # fmt: skip
    from compute.models import VirtualMachine

    net = make_network(member, project)
    nics.add_template_nic(member, template.pk, network=net.pk)
    template.public = True
    template.save()
    other_project = other_tenant.memberships.first().project
    with pytest.raises(Conflict) as exc:  # the template's reference, checked at use (issue 12)
        compute.create_vms(other_tenant, project=other_project, template=template, name="x", hold=True)
    assert exc.value.field == "template" and f"network {net.name}" in exc.value.message
    assert not VirtualMachine.objects.filter(project=other_project).exists()
