"""VLAN isolation: VLAN id pools (administrators), VLAN networks take ids from them and never
twice, the ORM-free plan the Linux driver gets (an 802.1Q sub-interface of the host's uplink),
and the API, schema and pages that expose it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services as compute
from network.drivers.base import HostTarget, LinkPlan, NetworkDriverError, SegmentPlan, segment_links
from network.models import VirtualNetwork, VniPool
from network.services import hosts, networks, nics
from network.vmnics import port_plan
from portal.errors import Conflict, InvalidInput, PermissionDenied

from .factories import make_network, vlan_pool, vni_pool

pytestmark = pytest.mark.django_db


# -- pools ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,field",
    [
        ({"first": 1, "last": 4095}, "last"),
        ({"first": 0, "last": 10}, "first"),
        ({"first": 10, "last": 5}, "last"),
        ({"first": 150, "last": 250}, "first"),  # overlaps the VLAN pool 100-199
        ({"first": 300, "last": 310, "kind": "qinq"}, "kind"),
        ({"first": 300, "last": 310, "name": "vlan100"}, "name"),
    ],
)
def test_bad_vlan_pool_names_the_field(admin_user: Any, kw: dict[str, Any], field: str) -> None:
    vlan_pool(100, 199)
    args = {"name": "p", "kind": "vlan", **kw}
    with pytest.raises(Conflict if field == "name" else InvalidInput) as exc:  # a taken name is a 409
        networks.create_vni_pool(admin_user, **args)
    assert exc.value.field == field
    assert VniPool.objects.count() == 1


def test_vlan_limit_is_4094_but_vxlan_pools_may_share_numbers(admin_user: Any) -> None:
    with pytest.raises(InvalidInput, match="4094"):
        networks.create_vni_pool(admin_user, name="big", kind="vlan", first=4000, last=4095)
    vlan = networks.create_vni_pool(admin_user, name="v", kind="vlan", first=100, last=4094)
    vx = networks.create_vni_pool(admin_user, name="x", first=100, last=5000)  # other kind: no overlap
    assert (vlan.kind, vx.kind) == ("vlan", "vxlan")


def test_only_cloud_admins_define_vlan_pools(member: Any) -> None:
    with pytest.raises(PermissionDenied):
        networks.create_vni_pool(member, name="p", kind="vlan", first=1, last=9)
    assert not VniPool.objects.exists()


# -- networks ---------------------------------------------------------------------------------
def test_vlan_network_takes_a_vlan_id_and_vxlan_keeps_its_vnis(member: Any, project: Any) -> None:
    vni_pool(100, 199)
    vlan_pool(100, 101)
    a = make_network(member, project, "a", "10.1.0.0/24", isolation="vlan")
    b = make_network(member, project, "b", "10.2.0.0/24")
    c = make_network(member, project, "c", "10.3.0.0/24", isolation="vlan")
    assert (a.isolation, a.vni, a.bridge, a.vni_pool.kind) == ("vlan", 100, "nphbv100", "vlan")
    assert (b.isolation, b.vni, b.bridge) == ("vxlan", 100, "nphb100")  # same number, other kind
    assert (c.vni, c.bridge) == (101, "nphbv101")
    with pytest.raises(Conflict) as exc:
        make_network(member, project, "d", "10.4.0.0/24", isolation="vlan")
    assert exc.value.field == "isolation" and "VLAN pool is exhausted" in exc.value.message
    assert VirtualNetwork.objects.count() == 3
    networks.delete_network(member, a.pk)
    assert make_network(member, project, "e", "10.5.0.0/24", isolation="vlan").vni == 100  # freed, reused


def test_vlan_network_without_vlan_pool_or_bad_isolation(member: Any, project: Any) -> None:
    vni_pool()
    with pytest.raises(Conflict) as exc:
        make_network(member, project, "a", isolation="vlan")
    assert exc.value.field == "isolation" and "no VLAN pool" in exc.value.message
    with pytest.raises(InvalidInput) as bad:
        make_network(member, project, "a", isolation="gre")
    assert bad.value.field == "isolation"
    assert not VirtualNetwork.objects.exists()


# -- the plan the driver gets -------------------------------------------------------------------
def test_plan_of_a_vlan_nic_names_the_uplink(member: Any, project: Any, template: Any, make_sim_host: Any,
                                              admin_user: Any) -> None:  # fmt: skip
    vlan_pool(300, 399)
    host, peer = make_sim_host("vh1"), make_sim_host("vh2")
    hosts.set_host_network(admin_user, host=host.pk, underlay_ip="10.9.0.1", uplink="eth1")
    hosts.set_host_network(admin_user, host=peer.pk, underlay_ip="10.9.0.2", uplink="eth1")
    net = make_network(member, project, "v", "10.7.0.0/24", isolation="vlan")
    (vm,) = compute.create_vms(member, project=project, template=template, name="vm", hold=True)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    plan = port_plan(nic, host)
    assert plan is not None
    assert plan.segment == SegmentPlan(bridge="nphbv300", vni=300, mtu=1450, peers=(), gateway4="10.7.0.1/24",
                                       isolation="vlan")  # fmt: skip
    assert plan.target.uplink == "eth1"
    assert segment_links(plan.segment, plan.target) == (
        LinkPlan(ifname="nphbv300", kind="bridge"),
        LinkPlan(ifname="nphv300", kind="vlan", master="nphbv300", link="eth1", vlan_id=300),
    )


def test_segment_links_vxlan_unchanged_and_vlan_needs_an_uplink() -> None:
    vx = SegmentPlan(bridge="nphb7", vni=7, mtu=1400)
    assert segment_links(vx, HostTarget()) == (
        LinkPlan(ifname="nphb7", kind="bridge", mtu=1400),
        LinkPlan(ifname="nphx7", kind="vxlan", master="nphb7", vxlan_id=7, mtu=1400),
    )
    with pytest.raises(NetworkDriverError, match="no uplink"):
        segment_links(SegmentPlan(bridge="nphbv7", vni=7, isolation="vlan"), HostTarget())
    with pytest.raises(NetworkDriverError, match="1-4094"):
        segment_links(SegmentPlan(bridge="nphbv0", vni=5000, isolation="vlan"), HostTarget(uplink="eth1"))


def test_uplink_is_an_interface_name(admin_user: Any, make_sim_host: Any) -> None:
    host = make_sim_host("vh1")
    with pytest.raises(InvalidInput) as exc:
        hosts.set_host_network(admin_user, host=host.pk, underlay_ip="10.9.0.1", uplink="a-very-long-uplink0")
    assert exc.value.field == "uplink"
    assert hosts.set_host_network(admin_user, host=host.pk, underlay_ip="10.9.0.1", uplink="bond0").uplink == "bond0"


# -- API and pages ----------------------------------------------------------------------------
def test_api_vlan_pool_and_network(admin_client: Any, member_client: Any, project: Any) -> None:
    resp = admin_client.post("/api/v1/vni-pools/", {"name": "v", "kind": "vlan", "first": 10, "last": 20},
                             format="json")  # fmt: skip
    assert resp.status_code == 201, resp.content
    assert resp.json()["kind"] == "vlan"
    bad = admin_client.post("/api/v1/vni-pools/", {"name": "w", "kind": "vlan", "first": 10, "last": 5000},
                            format="json")  # fmt: skip
    assert bad.status_code == 400 and "last" in str(bad.json()) and "4094" in str(bad.json())
    body = {"project": project.pk, "name": "n", "cidr4": "10.0.0.0/24", "isolation": "vlan"}
    net = member_client.post("/api/v1/networks/", body, format="json")
    assert net.status_code == 201, net.content
    assert (net.json()["isolation"], net.json()["vni"], net.json()["bridge"]) == ("vlan", 10, "nphbv10")
    topo = member_client.get(f"/api/v1/networks/topology/?project={project.pk}").json()
    assert [(n["isolation"], n["vni"]) for n in topo["networks"]] == [("vlan", 10)]
    schema = admin_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "isolation" in schema and "uplink" in schema


def test_pages_offer_vlan(admin_user: Any, member: Any, project: Any) -> None:
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/network/admin/").content.decode()
    assert 'name="kind"' in page and 'name="uplink"' in page
    resp = admin.post("/network/action/", {"what": "vni-pool-create", "name": "vl", "kind": "vlan", "first": "5",
                                           "last": "9"}, follow=True)  # fmt: skip
    assert "Pool vl created." in resp.content.decode()
    browser = Client()
    browser.force_login(member)
    assert 'name="isolation"' in browser.get("/network/").content.decode()
    resp = browser.post("/network/action/", {"what": "network-create", "name": "blue", "cidr4": "10.0.0.0/24",
                                             "isolation": "vlan"}, follow=True)  # fmt: skip
    assert "Network blue created (VLAN 5)." in resp.content.decode()
    assert "VLAN 5" in browser.get("/network/").content.decode()
    assert "(VLAN 5)" in browser.get("/network/topology/").content.decode()
