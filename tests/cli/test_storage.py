"""``nephele volume`` and ``nephele datastore`` through the real entry point against a live
server; volume operations run on the real worker (``agent``) and ``--wait`` follows them."""

from __future__ import annotations

from typing import Any

import pytest

from storage.models import Datastore, Volume

from .conftest import admin_json, nephele, ok_json


@pytest.fixture
def system_ds(cloud: dict[str, Any]) -> Datastore:
    path = cloud["tmp"] / "system-ds"
    path.mkdir()
    return Datastore.objects.create(name="system", kind="system", path=str(path), free_bytes=10**12, total_bytes=10**12)


def test_volume_life_cycle_with_wait(cloud: dict[str, Any], system_ds: Datastore, agent: Any) -> None:
    vol = ok_json(cloud, "volume", "create", "data", "--size-gb", "1", "--wait")
    assert vol["state"] == "available" and vol["size_gb"] == 1 and vol["project"] == cloud["project"]
    snap = ok_json(cloud, "volume", "snapshot", str(vol["id"]), "s1", "--wait")
    (s1,) = snap["snapshots"]
    assert s1["name"] == "s1"
    assert ok_json(cloud, "volume", "revert", str(vol["id"]), str(s1["id"]), "--yes", "--wait")["state"] == "available"
    assert ok_json(cloud, "volume", "grow", str(vol["id"]), "--size-gb", "2", "--wait")["size_gb"] == 2

    (vm,) = ok_json(cloud, "vm", "create", "held", "--template", str(cloud["template"]), "--hold")
    attached = ok_json(cloud, "volume", "attach", str(vol["id"]), "--vm", str(vm["id"]), "--target", "vdc", "--wait")
    assert attached["state"] == "in-use" and attached["vm"] == vm["id"] and attached["target"] == "vdc"
    assert [d["volume"] for d in ok_json(cloud, "vm", "disks", str(vm["id"]))] == [vol["id"]]
    # deleting an attached volume: 409 naming the VM, exit code 4
    busy = nephele(cloud, "volume", "delete", str(vol["id"]), "--yes")
    assert busy.returncode == 4 and "attached to VM held" in busy.stderr, busy.stderr
    assert ok_json(cloud, "volume", "detach", str(vol["id"]), "--wait")["state"] == "available"
    gone = ok_json(cloud, "volume", "delete", str(vol["id"]), "--yes", "--wait")
    assert gone == [{"id": vol["id"], "result": "deleted"}] and not Volume.objects.filter(pk=vol["id"]).exists()


def test_volume_input_errors(cloud: dict[str, Any], system_ds: Datastore) -> None:
    both = nephele(cloud, "volume", "create", "x", "--size-gb", "1", "--size-bytes", "5")
    assert both.returncode == 2 and "not both" in both.stderr
    no_size = nephele(cloud, "volume", "grow", "1")
    assert no_size.returncode == 2 and "field size_bytes" in no_size.stderr
    assert nephele(cloud, "volume", "show", "424242").returncode == 3


def test_datastores_are_for_cloud_admins(cloud: dict[str, Any]) -> None:
    path = cloud["tmp"] / "ds-made"
    made = admin_json(cloud, "datastore", "create", "more-images", "--kind", "image", "--path", str(path))
    assert made["kind"] == "image" and made["name"] == "more-images"
    assert made["id"] in [d["id"] for d in admin_json(cloud, "datastore", "list")]
    assert admin_json(cloud, "datastore", "disable", str(made["id"]))["state"] == "disabled"
    assert admin_json(cloud, "datastore", "enable", str(made["id"]))["state"] != "disabled"
    assert admin_json(cloud, "datastore", "update", str(made["id"]), "--name", "renamed")["name"] == "renamed"
    bad = nephele(cloud, "--profile", "root", "datastore", "create", "x", "--kind", "nonsense")
    assert bad.returncode == 1 and "field kind" in bad.stderr, bad.stderr
    assert nephele(cloud, "datastore", "list").returncode == 5  # a tenant: 403
    assert admin_json(cloud, "datastore", "delete", str(made["id"]), "--yes")[0]["result"] == "deleted"
