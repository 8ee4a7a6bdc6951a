"""The network REST API: creation, clear errors naming the field, nothing changed on refusal,
the topology, and bounded query counts on lists."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services as compute
from network.models import SecurityGroupRule, VirtualNetwork
from network.services import nics

from .factories import vni_pool

pytestmark = pytest.mark.django_db


def _net(client: Any, project: Any, **kw: Any) -> Any:
    body = {"project": project.pk, "name": "n", "cidr4": "10.0.0.0/24", "gateway4": "10.0.0.1", **kw}
    return client.post("/api/v1/networks/", body, format="json")


def test_create_network_and_usage(member_client: Any, project: Any) -> None:
    vni_pool()
    resp = _net(member_client, project, dns="10.0.0.53", cidr6="fd00:9::/64")
    assert resp.status_code == 201, resp.content
    data = resp.json()
    assert data["vni"] == 1000 and data["bridge"] == "nphb1000"
    assert (data["leases_used"], data["leases_total"]) == (0, 253)
    assert data["ranges"] == [{"id": data["ranges"][0]["id"], "network": data["id"], "first": "10.0.0.1",
                               "last": "10.0.0.254", "size": 254}]  # fmt: skip


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"gateway4": "10.9.9.9"}, "gateway4"),
        ({"cidr4": "10.0.0.0/33"}, "cidr4"),
        ({"visibility": "shared"}, "visibility"),
    ],
)
def test_bad_network_input(member_client: Any, project: Any, kw: dict[str, Any], field: str) -> None:
    vni_pool()
    resp = _net(member_client, project, **kw)
    assert resp.status_code in (400, 403)
    assert field in str(resp.json())
    assert VirtualNetwork.objects.count() == 0


def test_overlap_and_delete_with_leases(member_client: Any, member: Any, project: Any, template: Any) -> None:
    vni_pool()
    net = _net(member_client, project).json()
    resp = _net(member_client, project, name="m", cidr4="10.0.0.128/25", gateway4=None)
    assert resp.status_code == 400 and "overlaps" in resp.json()["detail"] and resp.json()["field"] == "cidr4"
    (vm,) = compute.create_vms(member, project=project, template=template, name="v", hold=True)
    nic = member_client.post("/api/v1/nics/", {"vm": vm.pk, "network": net["id"]}, format="json")
    assert nic.status_code == 201 and nic.json()["ipv4"] == "10.0.0.2"
    resp = member_client.delete(f"/api/v1/networks/{net['id']}/")
    assert resp.status_code == 409 and "leases" in resp.json()["detail"]
    assert member_client.delete(f"/api/v1/nics/{nic.json()['id']}/").status_code == 204
    assert member_client.delete(f"/api/v1/networks/{net['id']}/").status_code == 204


def test_rule_with_invalid_port_range(member_client: Any, project: Any) -> None:
    group = member_client.post("/api/v1/security-groups/", {"project": project.pk, "name": "web"}, format="json")
    assert group.status_code == 201
    body = {"group": group.json()["id"], "protocol": "tcp", "port_min": 443, "port_max": 80, "cidr": "0.0.0.0/0"}
    resp = member_client.post("/api/v1/security-group-rules/", body, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "port_max" and "port range" in resp.json()["detail"]
    assert SecurityGroupRule.objects.count() == 0


def test_exhausted_range_over_api(member_client: Any, member: Any, project: Any, template: Any) -> None:
    vni_pool()
    net = _net(member_client, project, cidr4="10.0.0.0/30", gateway4="10.0.0.1").json()  # one address: .2
    vms = compute.create_vms(member, project=project, template=template, name="v", count=2, hold=True)
    assert (
        member_client.post("/api/v1/nics/", {"vm": vms[0].pk, "network": net["id"]}, format="json").status_code == 201
    )
    resp = member_client.post("/api/v1/nics/", {"vm": vms[1].pk, "network": net["id"]}, format="json")
    assert resp.status_code == 409 and "exhausted" in resp.json()["detail"]


def test_topology_and_list_query_count(member_client: Any, member: Any, project: Any, template: Any,
                                       django_assert_max_num_queries: Any) -> None:  # fmt: skip
    vni_pool()
    net = _net(member_client, project).json()
    for i in range(5):
        (vm,) = compute.create_vms(member, project=project, template=template, name=f"v{i}", hold=True)
        nics.attach_nic(member, vm.pk, network=net["id"])
    topo = member_client.get(f"/api/v1/networks/topology/?project={project.pk}").json()
    assert [n["name"] for n in topo["networks"]] == ["n"] and len(topo["vms"]) == 5
    assert all(v["nics"][0]["network"] == net["id"] for v in topo["vms"])
    with django_assert_max_num_queries(12):
        assert len(member_client.get("/api/v1/nics/").json()["results"]) == 5
    with django_assert_max_num_queries(12):
        assert member_client.get("/api/v1/public-ips/").status_code == 200
