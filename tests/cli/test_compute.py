"""Templates, hosts and clusters through the real entry point against a live server."""

from __future__ import annotations

from typing import Any

from compute.models import Cluster, Host, VMTemplate
from tests.factories import ProjectFactory

from .conftest import admin_json, nephele, ok_json


def test_templates_create_update_share_delete(cloud: dict[str, Any]) -> None:
    tpl = ok_json(cloud, "template", "create", "medium", "--vcpu", "2", "--memory-mb", "1024", "--label", "zone=a")
    assert (tpl["vcpu"], tpl["memory_mb"], tpl["required_labels"]) == (2, 1024, {"zone": "a"})
    assert {t["name"] for t in ok_json(cloud, "template", "list")} == {"small", "medium"}
    assert ok_json(cloud, "template", "update", str(tpl["id"]), "--vcpu", "4")["vcpu"] == 4
    bad = nephele(cloud, "template", "update", str(tpl["id"]), "--memory-mb", "0")
    assert bad.returncode == 1 and "field memory_mb" in bad.stderr, bad.stderr
    public = nephele(cloud, "template", "update", str(tpl["id"]), "--public")
    assert public.returncode in (1, 5) and "public" in public.stderr, public.stderr  # cloud admins only
    other = ProjectFactory()
    assert ok_json(cloud, "template", "share", str(tpl["id"]), "--with-project", str(other.pk))["projects"] == [
        other.pk
    ]
    assert ok_json(cloud, "template", "unshare", str(tpl["id"]), "--with-project", str(other.pk))["projects"] == []
    shown = ok_json(cloud, "template", "show", str(tpl["id"]))
    assert shown["name"] == "medium"
    assert ok_json(cloud, "template", "delete", str(tpl["id"]), "--yes")[0]["result"] == "deleted"
    assert not VMTemplate.objects.filter(pk=tpl["id"]).exists()


def test_hosts_and_clusters_are_for_cloud_admins(cloud: dict[str, Any]) -> None:
    assert nephele(cloud, "host", "list").returncode == 5
    cluster = admin_json(cloud, "cluster", "create", "rack1", "--policy", "striping")
    assert cluster["placement_policy"] == "striping"
    assert (
        admin_json(cloud, "cluster", "update", str(cluster["id"]), "--description", "row 1")["description"] == "row 1"
    )
    bad = nephele(cloud, "--profile", "root", "cluster", "create", "rack2", "--policy", "random")
    assert bad.returncode == 1 and "field placement_policy" in bad.stderr, bad.stderr
    host = admin_json(cloud, "host", "add", "node1", "--uri", "test:///default", "--hypervisor", "test",
                      "--cluster", str(cluster["id"]), "--label", "zone=a")  # fmt: skip
    assert host["cluster"] == cluster["id"] and host["labels"] == {"zone": "a"}
    assert [h["name"] for h in admin_json(cloud, "host", "list")] == ["node1"]
    assert admin_json(cloud, "host", "disable", str(host["id"]))["state"] == "DISABLED"
    in_use = nephele(cloud, "--profile", "root", "cluster", "delete", str(cluster["id"]), "--yes")
    assert in_use.returncode == 4 and "node1" in in_use.stderr, in_use.stderr
    assert admin_json(cloud, "host", "delete", str(host["id"]), "--yes")[0]["result"] == "deleted"
    assert not Host.objects.filter(pk=host["id"]).exists()
    assert admin_json(cloud, "cluster", "delete", str(cluster["id"]), "--yes")[0]["result"] == "deleted"
    assert not Cluster.objects.filter(pk=cluster["id"]).exists()
