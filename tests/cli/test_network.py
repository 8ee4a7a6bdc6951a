"""``nephele network``, ``secgroup``, ``nic``, ``ippool`` and ``publicip`` through the real entry
point against a live server."""

from __future__ import annotations

from typing import Any

from network.models import PublicIP, SecurityGroupRule, VirtualNetwork, VniPool

from .conftest import admin_json, nephele, ok_json


def test_networks_nics_and_public_ips(cloud: dict[str, Any]) -> None:
    VniPool.objects.create(name="vx", first=5000, last=5099)
    net = ok_json(cloud, "network", "create", "lan", "--cidr4", "10.20.0.0/24", "--dns", "10.20.0.53")
    assert net["cidr4"] == "10.20.0.0/24" and 5000 <= net["vni"] <= 5099 and net["project"] == cloud["project"]
    taken = nephele(cloud, "network", "create", "lan", "--cidr4", "10.21.0.0/24")
    assert taken.returncode == 4 and "field name" in taken.stderr, taken.stderr
    bad = nephele(cloud, "network", "create", "wan", "--cidr4", "10.300.0.0/24")
    assert bad.returncode == 1 and "field cidr4" in bad.stderr, bad.stderr
    assert ok_json(cloud, "network", "update", str(net["id"]), "--description", "office")["description"] == "office"
    assert [n["name"] for n in ok_json(cloud, "network", "list")] == ["lan"]

    (vm,) = ok_json(cloud, "vm", "create", "web", "--template", str(cloud["template"]), "--hold")
    nic = ok_json(cloud, "nic", "attach", "--vm", str(vm["id"]), "--network", str(net["id"]), "--ip", "10.20.0.10")
    assert nic["ipv4"] == "10.20.0.10" and nic["vm"] == vm["id"]
    assert [n["id"] for n in ok_json(cloud, "nic", "list", "--filter", f"vm={vm['id']}")] == [nic["id"]]
    assert [lease["address"] for lease in ok_json(cloud, "network", "leases", str(net["id"]))] == ["10.20.0.10"]
    # a network with leases cannot go: 409
    busy = nephele(cloud, "network", "delete", str(net["id"]), "--yes")
    assert busy.returncode == 4, busy.stderr

    assert nephele(cloud, "ippool", "create", "x", "--cidr", "203.0.113.0/24", "--first", "203.0.113.10",
                   "--last", "203.0.113.20").returncode == 5  # fmt: skip
    pool = admin_json(cloud, "ippool", "create", "public", "--cidr", "203.0.113.0/24", "--first", "203.0.113.10",
                      "--last", "203.0.113.11")  # fmt: skip
    pip = ok_json(cloud, "publicip", "allocate", "--pool", str(pool["id"]))
    assert pip["address"] == "203.0.113.10" and pip["nic"] is None
    attached = ok_json(cloud, "publicip", "attach", str(pip["id"]), "--nic", str(nic["id"]))
    assert attached["nic"] == nic["id"] and attached["private_ip"] == "10.20.0.10"
    assert ok_json(cloud, "publicip", "detach", str(pip["id"]))["nic"] is None
    assert ok_json(cloud, "publicip", "release", str(pip["id"]), "--yes")[0]["result"] == "released"
    assert not PublicIP.objects.filter(pk=pip["id"]).exists()

    assert ok_json(cloud, "nic", "detach", str(nic["id"]), "--yes")[0]["result"] == "detached"
    assert ok_json(cloud, "network", "delete", str(net["id"]), "--yes")[0]["result"] == "deleted"
    assert not VirtualNetwork.objects.filter(pk=net["id"]).exists()


def test_security_groups_and_rules(cloud: dict[str, Any]) -> None:
    group = ok_json(cloud, "secgroup", "create", "web", "--description", "http in")
    assert group["name"] == "web" and group["rules"] == []
    rule = ok_json(cloud, "secgroup", "rule-add", str(group["id"]), "--protocol", "tcp", "--port", "8000-8080",
                   "--cidr", "0.0.0.0/0")  # fmt: skip
    assert (rule["protocol"], rule["port_min"], rule["port_max"]) == ("tcp", 8000, 8080)
    ssh = ok_json(cloud, "secgroup", "rule-add", str(group["id"]), "--protocol", "tcp", "--port", "22", "--remote-group",
                  str(group["id"]))  # fmt: skip
    assert (ssh["port_min"], ssh["port_max"], ssh["remote_group"]) == (22, 22, group["id"])
    needs_source = nephele(cloud, "secgroup", "rule-add", str(group["id"]), "--protocol", "udp")
    assert needs_source.returncode == 1 and "field cidr" in needs_source.stderr
    assert {r["id"] for r in ok_json(cloud, "secgroup", "rules", str(group["id"]))} == {rule["id"], ssh["id"]}
    table = nephele(cloud, "secgroup", "rules", str(group["id"]))
    assert table.returncode == 0 and "8080" in table.stdout
    bad = nephele(cloud, "secgroup", "rule-add", str(group["id"]), "--protocol", "smtp")
    assert bad.returncode == 1 and "field protocol" in bad.stderr, bad.stderr
    assert nephele(cloud, "secgroup", "rule-add", str(group["id"]), "--port", "ssh").returncode == 2
    assert nephele(cloud, "secgroup", "rule-remove", str(ssh["id"]), stdin="n\n").returncode == 1
    assert ok_json(cloud, "secgroup", "rule-remove", str(ssh["id"]), "--yes")["result"] == "removed"
    assert list(SecurityGroupRule.objects.values_list("pk", flat=True)) == [rule["id"]]
    assert ok_json(cloud, "secgroup", "delete", str(group["id"]), "--yes")[0]["result"] == "deleted"
