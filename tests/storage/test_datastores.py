"""Datastores through the API, the services, the pages and the monitoring task.

The ``dir`` pools are defined for real on the local libvirtd (qemu:///system) under names
unique to this test run (``<NEPHELE_DOMAIN_PREFIX>-ds-<pk>``) and undefined afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from monitoring.models import AuditRecord, Event, Kind, Sample
from portal.errors import Conflict, PermissionDenied
from storage import services, tasks
from storage.drivers.base import DriverError
from storage.drivers.libvirt import LibvirtPoolDriver
from storage.models import Datastore, DatastoreKind, DatastoreState
from storage.services import datastores as svc
from tests.conftest import client_for, requires_postgres
from tests.factories import ClusterFactory

from .factories import GIB, DatastoreFactory, image_in

SYSTEM = "qemu:///system"
UNREACHABLE = "qemu:///system?socket=/nonexistent/libvirt-sock"


@pytest.fixture
def libvirt_pools() -> Iterator[LibvirtPoolDriver]:
    """The real daemon; every pool of this test run is undefined afterwards."""
    drv = LibvirtPoolDriver(SYSTEM)
    try:
        drv._connection()
    except DriverError:
        pytest.skip("qemu:///system is not reachable (bash scripts/start-libvirtd.sh)")
    yield drv
    prefix = f"{settings.NEPHELE_DOMAIN_PREFIX}-ds-"
    for pool in drv._connection().listAllStoragePools():
        if pool.name().startswith(prefix):
            drv.undefine_pool(pool.name())
    drv.close()


def _tasks(queued: list[Any]) -> list[str]:
    """The storage service functions that queued work after commit (browser pushes left out)."""
    return [q.__qualname__.split(".")[0] for q in queued if q.__module__.startswith("storage.")]


# ------------------------------------------------------------------ create and measure
@pytest.mark.integration
def test_create_dir_datastore_defines_the_pool_and_measures_it(
    admin_client: Any, libvirt_pools: LibvirtPoolDriver, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        resp = admin_client.post("/api/v1/datastores/", {"name": "images-1", "kind": "image"}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    expected_path = str(Path(settings.NEPHELE_STATE_DIR) / "datastores" / "images-1")
    assert (body["path"], body["driver"], body["state"]) == (expected_path, "dir", "ready")
    assert Path(expected_path).is_dir() and 0 < body["free_bytes"] <= body["total_bytes"]  # first figures at once
    assert _tasks(queued) == ["_queue_monitor"]  # storage.monitor_datastore, after commit
    assert AuditRecord.objects.filter(object_type="datastore", action="create", object_id=str(body["id"])).exists()

    assert tasks.monitor_datastore(body["id"]) == "ok"  # what the queued task does

    ds = Datastore.objects.get(pk=body["id"])
    pool = libvirt_pools._connection().storagePoolLookupByName(svc.libvirt_pool_name(ds))
    assert pool.isActive() and pool.autostart() and Path(expected_path).is_dir()
    state, capacity, _allocation, available = pool.info()
    assert ds.total_bytes == capacity > 0 and 0 < ds.free_bytes <= ds.total_bytes
    assert ds.used_bytes == ds.total_bytes - ds.free_bytes and ds.monitored_at is not None
    metrics = set(Sample.objects.filter(kind=Kind.DATASTORE, object_id=ds.pk).values_list("metric", flat=True))
    assert metrics == {svc.METRIC_TOTAL_BYTES, svc.METRIC_USED_BYTES, svc.METRIC_FREE_BYTES}

    detail = admin_client.get(f"/api/v1/datastores/{ds.pk}/").json()
    assert detail["free_bytes"] == ds.free_bytes and detail["used_percent"] == ds.used_percent


@pytest.mark.integration
def test_monitor_datastores_measures_all_and_records_errors(admin_user: Any, libvirt_pools: LibvirtPoolDriver,
                                                            tmp_path: Path) -> None:  # fmt: skip
    good = services.create_datastore(admin_user, name="good", kind="system", path=str(tmp_path / "sys"))
    lvm = services.create_datastore(admin_user, name="lvm", kind="system", driver="logical", clone_mode="copy",
                                    source={"vg": "vg_nephele"})  # fmt: skip

    assert tasks.monitor_datastores() == {"ok": 1, "failed": 1}

    good.refresh_from_db()
    lvm.refresh_from_db()
    assert good.state == DatastoreState.READY and good.total_bytes > 0
    assert lvm.state == DatastoreState.ERROR and "pvs" in lvm.state_message  # this machine has no LVM tools
    assert Event.objects.filter(type="datastore.state.error", object_id=str(lvm.pk)).exists()


def test_unreachable_daemon_falls_back_to_the_directory(admin_user: Any, tmp_path: Path) -> None:
    ds = DatastoreFactory(path=str(tmp_path / "fallback"), total_bytes=0, free_bytes=0, used_bytes=0)
    info, error = tasks.measure(ds, uri=UNREACHABLE)
    assert error == "" and info is not None and info.capacity_bytes > 0
    assert (tmp_path / "fallback").is_dir()

    nfs = DatastoreFactory(driver="netfs", source={"host": "127.0.0.1", "dir": "/export"})
    info, error = tasks.measure(nfs, uri=UNREACHABLE)
    assert info is None and "nonexistent" in error


def test_measurements_move_the_state(admin_user: Any) -> None:
    ds = DatastoreFactory()
    services.record_pool_info(ds.pk, None, "pool is gone")
    ds.refresh_from_db()
    assert (ds.state, ds.state_message) == (DatastoreState.ERROR, "pool is gone")
    assert ds.total_bytes == 100 * GIB  # the last good figures stay

    from storage.drivers.base import PoolInfo, PoolState

    services.record_pool_info(ds.pk, PoolInfo("p", PoolState.RUNNING, 10 * GIB, 4 * GIB, 6 * GIB))
    ds.refresh_from_db()
    assert (ds.state, ds.total_bytes, ds.used_bytes, ds.free_bytes, ds.used_percent) == ("ready", 10 * GIB, 4 * GIB,
                                                                                          6 * GIB, 40)  # fmt: skip

    services.set_datastore_state(admin_user, ds.pk, "disable")
    services.record_pool_info(ds.pk, PoolInfo("p", PoolState.RUNNING, 10 * GIB, 5 * GIB, 5 * GIB))
    services.record_pool_info(ds.pk, None, "down")
    ds.refresh_from_db()
    assert ds.state == DatastoreState.DISABLED and ds.free_bytes == 5 * GIB


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "body,field,fragment",
    [
        ({"name": "bad name", "kind": "image"}, "name", "1-63"),
        ({"name": "x", "kind": "image", "path": "relative/dir"}, "path", "absolute"),
        ({"name": "x", "kind": "image", "path": "/srv/../etc"}, "path", "normalised"),
        ({"name": "x", "kind": "image", "path": "/"}, "path", "other than /"),
        ({"name": "x", "kind": "image", "driver": "netfs", "source": {"dir": "/export"}}, "source.host", "NFS server"),
        ({"name": "x", "kind": "image", "driver": "netfs", "source": {"host": "h", "dir": "rel"}}, "source.dir", "absolute"),
        ({"name": "x", "kind": "image", "driver": "netfs", "source": {"host": "h", "dir": "/e", "format": "zfs"}},
         "source.format", "nfs, glusterfs"),
        ({"name": "x", "kind": "system", "driver": "rbd", "clone_mode": "copy", "source": {"pool": "vms"}},
         "source.monitors", "Ceph monitors"),
        ({"name": "x", "kind": "system", "driver": "rbd", "clone_mode": "copy",
          "source": {"pool": "vms", "monitors": ["mon:70000"]}}, "source.monitors", "1 to 65535"),
        ({"name": "x", "kind": "system", "driver": "rbd", "clone_mode": "copy",
          "source": {"pool": "vms", "monitors": "mon", "auth_username": "u", "secret_uuid": "nope"}},
         "source.secret_uuid", "UUID"),
        ({"name": "x", "kind": "system", "driver": "logical", "clone_mode": "copy", "source": {}}, "source.vg", "volume group"),
        ({"name": "x", "kind": "system", "driver": "logical", "source": {"vg": "vg0"}}, "clone_mode", "copies"),
        ({"name": "x", "kind": "image", "source": {"host": "h"}}, "source", "unknown key"),
        ({"name": "x", "kind": "nope"}, "kind", ""),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_creates_nothing(admin_client: Any, body: dict[str, Any], field: str,
                                                       fragment: str) -> None:  # fmt: skip
    resp = admin_client.post("/api/v1/datastores/", body, format="json")
    assert resp.status_code == 400, resp.content
    data = resp.json()
    assert field in data, data
    assert fragment in str(data[field])
    assert not Datastore.objects.exists()


def test_names_and_paths_are_unique(admin_client: Any, tmp_path: Path) -> None:
    DatastoreFactory(name="taken", path=str(tmp_path / "a"))
    resp = admin_client.post("/api/v1/datastores/", {"name": "taken", "kind": "image"}, format="json")
    assert (resp.status_code, resp.json()["field"]) == (409, "name")  # a conflict with an existing one
    resp = admin_client.post("/api/v1/datastores/", {"name": "new", "kind": "image", "path": str(tmp_path / "a")},
                             format="json")  # fmt: skip
    assert (resp.status_code, resp.json()["field"]) == (409, "path") and "taken" in resp.json()["detail"]
    assert Datastore.objects.count() == 1


def test_ceph_and_nfs_settings_are_normalised(admin_user: Any) -> None:
    secret = "6f1c3c8e-2b7d-4a76-9c0e-1f2a3b4c5d6e"
    ceph = services.create_datastore(admin_user, name="ceph", kind="system", driver="rbd", clone_mode="copy",
                                     source={"pool": "vms", "monitors": "mon1, 10.0.0.2:6790",
                                             "auth_username": "libvirt", "secret_uuid": secret.upper()})  # fmt: skip
    assert ceph.source == {"pool": "vms", "monitors": ["mon1:6789", "10.0.0.2:6790"], "auth_username": "libvirt",
                           "secret_uuid": secret}  # fmt: skip
    assert ceph.path == ""
    nfs = services.create_datastore(admin_user, name="nfs", kind="image", driver="netfs",
                                    source={"host": "nfs.lan", "dir": "/export/images"})  # fmt: skip
    assert nfs.source == {"host": "nfs.lan", "dir": "/export/images", "format": "nfs"}
    lvm = services.create_datastore(admin_user, name="lvm", kind="system", driver="logical", clone_mode="copy",
                                    source={"vg": "vg0", "devices": "/dev/sdb,/dev/sdc"})  # fmt: skip
    assert (lvm.path, lvm.source["devices"]) == ("/dev/vg0", ["/dev/sdb", "/dev/sdc"])
    # the pool XML the task would define, from the stored settings
    xml = LibvirtPoolDriver(SYSTEM).pool_xml(svc.pool_spec(ceph))
    assert "<name>vms</name>" in xml and 'port="6790"' in xml and secret in xml


def test_only_cloud_admins_change_datastores(member: Any, admin_user: Any) -> None:
    with pytest.raises(PermissionDenied):
        services.create_datastore(member, name="x", kind="image")
    ds = DatastoreFactory()
    for call in (lambda: services.set_datastore_state(member, ds.pk, "disable"),
                 lambda: services.update_datastore(member, ds.pk, name="y"),
                 lambda: services.delete_datastore(member, ds.pk)):  # fmt: skip
        with pytest.raises(PermissionDenied):
            call()
    ds.refresh_from_db()
    assert (ds.name, ds.state) != ("y", DatastoreState.DISABLED) and Datastore.objects.count() == 1


def test_auditors_read_but_do_not_change(db: Any) -> None:
    from django.contrib.auth.models import Group

    from tenants.roles import AUDITOR_GROUP
    from tests.factories import UserFactory

    auditor = UserFactory(username="auditor")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITOR_GROUP)[0])
    ds = DatastoreFactory()
    c = client_for(auditor)
    assert c.get("/api/v1/datastores/").json()["count"] == 1
    assert c.get(f"/api/v1/datastores/{ds.pk}/").status_code == 200
    assert c.post(f"/api/v1/datastores/{ds.pk}/action/", {"action": "disable"}, format="json").status_code == 403
    assert c.delete(f"/api/v1/datastores/{ds.pk}/").status_code == 403
    assert Datastore.objects.get(pk=ds.pk).state == DatastoreState.READY


# ------------------------------------------------------------------ update, state, delete
def test_update_refuses_moving_a_datastore_that_holds_images(admin_client: Any, member: Any, project: Any,
                                                             tmp_path: Path) -> None:  # fmt: skip
    ds = DatastoreFactory()
    image_in(ds, project=project, owner=member)
    resp = admin_client.patch(f"/api/v1/datastores/{ds.pk}/", {"path": str(tmp_path / "elsewhere")}, format="json")
    assert resp.status_code == 409 and "1 images" in resp.json()["detail"] and resp.json()["field"] == "path"
    cluster = ClusterFactory()
    resp = admin_client.patch(
        f"/api/v1/datastores/{ds.pk}/", {"name": "renamed", "clusters": [cluster.pk]}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert (resp.json()["name"], resp.json()["clusters"], resp.json()["path"]) == ("renamed", [cluster.pk], ds.path)
    assert resp.json()["contents"] == {"images": 1}


def test_update_of_an_empty_datastore_revalidates(admin_client: Any, django_capture_on_commit_callbacks: Any) -> None:
    ds = DatastoreFactory()
    resp = admin_client.patch(f"/api/v1/datastores/{ds.pk}/", {"driver": "netfs"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "source.host"
    with django_capture_on_commit_callbacks() as queued:
        resp = admin_client.patch(f"/api/v1/datastores/{ds.pk}/",
                                  {"driver": "netfs", "source": {"host": "nfs", "dir": "/e"}}, format="json")  # fmt: skip
    assert resp.status_code == 200, resp.content
    assert resp.json()["driver"] == "netfs" and _tasks(queued) == ["_queue_monitor"]  # the pool is redefined


def test_enable_disable_follow_the_state_table(admin_client: Any) -> None:
    ds = DatastoreFactory()
    url = f"/api/v1/datastores/{ds.pk}/action/"
    assert admin_client.post(url, {"action": "enable"}, format="json").status_code == 409
    resp = admin_client.post(url, {"action": "disable"}, format="json")
    assert (resp.status_code, resp.json()["state"]) == (200, "disabled")
    assert admin_client.post(url, {"action": "disable"}, format="json").status_code == 409
    assert admin_client.post(url, {"action": "refresh"}, format="json").status_code == 202
    assert admin_client.post(url, {"action": "explode"}, format="json").status_code == 400
    resp = admin_client.post(url, {"action": "enable"}, format="json")
    assert (resp.status_code, resp.json()["state"]) == (200, "ready")
    types = list(Event.objects.filter(object_type="datastore").order_by("pk").values_list("type", flat=True))
    assert "datastore.state.disabled" in types and "datastore.state.ready" in types


def test_delete_is_refused_while_images_are_in_it(admin_client: Any, member: Any, project: Any,
                                                  django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    ds = DatastoreFactory(name="busy")
    image_in(ds, project=project, owner=member)
    resp = admin_client.delete(f"/api/v1/datastores/{ds.pk}/")
    assert (
        resp.status_code == 409
        and resp.json()["detail"] == "datastore busy still holds 1 images; delete or move them first"
    )
    assert Datastore.objects.filter(pk=ds.pk).exists()

    empty = DatastoreFactory()
    with django_capture_on_commit_callbacks() as queued:
        assert admin_client.delete(f"/api/v1/datastores/{empty.pk}/").status_code == 204
    assert not Datastore.objects.filter(pk=empty.pk).exists()
    assert _tasks(queued) == ["delete_datastore"]  # the pool is undefined after commit


def test_delete_is_refused_while_volumes_or_vm_disks_are_in_it(admin_client: Any, member: Any, project: Any) -> None:
    from storage.models import Volume

    ds = DatastoreFactory(name="vols", kind="system")
    Volume.objects.create(project=project, owner=member, name="v1", datastore=ds, size_bytes=GIB)
    resp = admin_client.delete(f"/api/v1/datastores/{ds.pk}/")
    assert resp.status_code == 409 and "1 volumes" in resp.json()["detail"]
    assert admin_client.get(f"/api/v1/datastores/{ds.pk}/").json()["contents"] == {"volumes": 1}
    assert Datastore.objects.filter(pk=ds.pk).exists()


@pytest.mark.integration
def test_delete_undefines_the_pool_and_keeps_the_files(admin_user: Any, libvirt_pools: LibvirtPoolDriver,
                                                        tmp_path: Path) -> None:  # fmt: skip
    ds = services.create_datastore(admin_user, name="gone", kind="image", path=str(tmp_path / "gone"))
    tasks.monitor_datastore(ds.pk)
    (tmp_path / "gone" / "keep.raw").write_bytes(b"x")
    name = svc.libvirt_pool_name(ds)
    services.delete_datastore(admin_user, ds.pk)
    assert tasks.remove_pool(name, SYSTEM) == "ok"
    assert name not in [p.name() for p in libvirt_pools._connection().listAllStoragePools()]
    assert (tmp_path / "gone" / "keep.raw").exists()


# ------------------------------------------------------------------ helpers for other managers
def test_pick_datastore_prefers_most_free_space_within_reach(db: Any) -> None:
    c1, c2 = ClusterFactory(), ClusterFactory()
    DatastoreFactory(name="small", kind="system", free_bytes=10 * GIB)
    big = DatastoreFactory(name="big", kind="system", free_bytes=80 * GIB)
    only_c1 = DatastoreFactory(name="c1", kind="system", free_bytes=90 * GIB, clusters=[c1])
    DatastoreFactory(name="off", kind="system", free_bytes=500 * GIB, state=DatastoreState.DISABLED)

    assert svc.pick_datastore("system") == big  # unrestricted ones only without a cluster
    assert svc.pick_datastore("system", cluster_id=c1.pk) == only_c1
    assert svc.pick_datastore("system", cluster_id=c2.pk) == big
    assert svc.pick_datastore("system", cluster_id=c1.pk, need_bytes=85 * GIB) == only_c1
    with pytest.raises(Conflict, match=f"no ready system datastore reachable from cluster {c2.pk} with 100 GiB free"):
        svc.pick_datastore("system", cluster_id=c2.pk, need_bytes=100 * GIB)
    with pytest.raises(Conflict, match="no ready image datastore"):
        svc.pick_datastore("image")


def test_default_image_datastore(db: Any) -> None:
    with pytest.raises(Conflict, match="no ready image datastore"):
        svc.default_image_datastore()
    restricted = DatastoreFactory(kind=DatastoreKind.IMAGE, free_bytes=900 * GIB, clusters=[ClusterFactory()])
    assert svc.default_image_datastore() == restricted
    open_ds = DatastoreFactory(kind=DatastoreKind.IMAGE, free_bytes=1 * GIB)
    assert svc.default_image_datastore() == open_ds


def test_load_demo_creates_default_datastores(db: Any) -> None:
    call_command("load_demo", "--no-qemu", stdout=open("/dev/null", "w"))  # noqa: SIM115
    kinds = dict(Datastore.objects.values_list("name", "kind"))
    assert kinds == {"default-images": "image", "default-system": "system"}
    assert Datastore.objects.get(name="default-system").path.startswith(str(settings.NEPHELE_STATE_DIR))
    call_command("load_demo", "--no-qemu", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert Datastore.objects.count() == 2


# ------------------------------------------------------------------ API list, metrics
def test_list_does_a_constant_number_of_queries(admin_client: Any) -> None:
    DatastoreFactory(clusters=[ClusterFactory()])
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get("/api/v1/datastores/").status_code == 200
    for _ in range(4):
        DatastoreFactory(clusters=[ClusterFactory(), ClusterFactory()])
    with CaptureQueriesContext(connection) as five:
        resp = admin_client.get("/api/v1/datastores/?kind=image")
    assert resp.json()["count"] == 5
    assert len(five) == len(one)


def test_prometheus_exposes_datastore_capacity(admin_user: Any) -> None:
    from tenants import credentials

    DatastoreFactory(name="pm", kind="system", total_bytes=100 * GIB, used_bytes=30 * GIB, free_bytes=70 * GIB)
    _token, secret = credentials.create_token(admin_user, name="prom")
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}").content.decode()
    labels = 'datastore="pm",kind="system",driver="dir",state="ready"'
    assert f"nephele_datastore_total_bytes{{{labels}}} {float(100 * GIB)}" in text
    assert f"nephele_datastore_used_bytes{{{labels}}} {float(30 * GIB)}" in text
    assert f"nephele_datastore_free_bytes{{{labels}}} {float(70 * GIB)}" in text
    assert "# TYPE nephele_datastore_free_bytes gauge" in text


# ------------------------------------------------------------------ pages
def _admin_browser(admin_user: Any) -> Client:
    c = Client()
    c.force_login(admin_user)
    return c


def test_list_page_shows_capacity_bars_kind_driver_state_and_reach(admin_user: Any) -> None:
    cluster = ClusterFactory(name="rack1")
    DatastoreFactory(name="sys1", kind="system", clusters=[cluster], total_bytes=100 * GIB, used_bytes=82 * GIB,
                     free_bytes=18 * GIB)  # fmt: skip
    DatastoreFactory(name="img1", state=DatastoreState.ERROR, state_message="pool gone")
    html = _admin_browser(admin_user).get("/storage/datastores/").content.decode()
    assert "sys1" in html and "img1" in html and "rack1" in html and "every cluster" in html
    assert 'aria-valuenow="82"' in html and 'class="bar hot"' in html  # 82 % used: the warning colour
    assert "pool gone" in html and 'class="state bad"' in html
    assert 'href="/storage/datastores/"' in html  # the nav link


def test_create_form_reports_the_missing_nfs_export_on_its_field(admin_user: Any) -> None:
    resp = _admin_browser(admin_user).post("/storage/datastores/create/", {"name": "nfs1", "kind": "image",
                                           "driver": "netfs", "clone_mode": "cow", "nfs_host": "nfs.lan"})  # fmt: skip
    assert resp.status_code == 400
    form = resp.context["form"]
    assert "exported directory" in str(form.errors["nfs_dir"]) and not Datastore.objects.exists()


def test_create_form_then_detail_and_actions(admin_user: Any, django_capture_on_commit_callbacks: Any) -> None:
    c = _admin_browser(admin_user)
    with django_capture_on_commit_callbacks() as queued:
        resp = c.post("/storage/datastores/create/", {"name": "ceph1", "kind": "system", "driver": "rbd",
                      "clone_mode": "copy", "ceph_pool": "vms", "ceph_monitors": "mon1,mon2:6790",
                      "nfs_host": "ignored"})  # fmt: skip
    ds = Datastore.objects.get(name="ceph1")
    assert resp.status_code == 302 and resp["Location"] == f"/storage/datastores/{ds.pk}/"
    assert _tasks(queued) == ["_queue_monitor"]
    assert ds.source == {"pool": "vms", "monitors": ["mon1:6789", "mon2:6790"]}

    html = c.get(f"/storage/datastores/{ds.pk}/").content.decode()
    assert "Ceph RBD" in html and "monitors=" in html and "not measured yet" in html and ">Disable<" in html

    c.post(f"/storage/datastores/{ds.pk}/action/", {"action": "disable"})
    assert Datastore.objects.get(pk=ds.pk).state == DatastoreState.DISABLED
    resp = c.post(f"/storage/datastores/{ds.pk}/action/", {"action": "disable"}, follow=True)
    assert "disabled; disable is not possible now" in resp.content.decode()
    resp = c.post(f"/storage/datastores/{ds.pk}/action/", {"action": "delete"})
    assert resp["Location"] == "/storage/datastores/" and not Datastore.objects.exists()


def test_edit_form_changes_reach_and_refuses_moving_a_busy_datastore(admin_user: Any, member: Any, project: Any,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    c = _admin_browser(admin_user)
    ds = DatastoreFactory(name="edit-me")
    rack = ClusterFactory(name="rack9")
    resp = c.post(f"/storage/datastores/{ds.pk}/edit/", {"name": "edited", "clone_mode": "copy", "clusters": [rack.pk],
                                                         "path": ds.path})  # fmt: skip
    assert resp.status_code == 302
    ds.refresh_from_db()
    assert (ds.name, ds.clone_mode, list(ds.clusters.all())) == ("edited", "copy", [rack])

    image_in(ds, project=project, owner=member)
    resp = c.post(f"/storage/datastores/{ds.pk}/edit/", {"name": "edited", "clone_mode": "copy",
                                                         "path": str(tmp_path / "moved")})  # fmt: skip
    assert resp.status_code == 400
    assert "holds 1 images" in str(resp.context["form"].errors["path"])
    ds.refresh_from_db()
    assert ds.path != str(tmp_path / "moved") and list(ds.clusters.all()) == [rack]


# ------------------------------------------------------------------ concurrency (PostgreSQL row locks)
def _race(n: int, call: Any) -> list[int]:
    import threading

    codes: list[int] = []
    barrier = threading.Barrier(n)

    def go(i: int) -> None:
        try:
            barrier.wait()
            codes.append(call(i).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(codes)


@requires_postgres()
def test_concurrent_creates_of_one_name_make_one_datastore(transactional_db: Any, admin_user: Any,
                                                           tmp_path: Path) -> None:  # fmt: skip
    body = {"name": "same", "kind": "image"}
    codes = _race(4, lambda i: client_for(admin_user).post("/api/v1/datastores/", {**body, "path": str(tmp_path / str(i))},
                                                            format="json"))  # fmt: skip
    assert codes == [201, 409, 409, 409]
    assert Datastore.objects.filter(name="same").count() == 1


@requires_postgres()
def test_concurrent_disables_one_wins_the_other_gets_409(transactional_db: Any, admin_user: Any) -> None:
    ds = DatastoreFactory()
    url = f"/api/v1/datastores/{ds.pk}/action/"
    codes = _race(2, lambda i: client_for(admin_user).post(url, {"action": "disable"}, format="json"))
    assert codes == [200, 409]
    assert AuditRecord.objects.filter(object_type="datastore", action="disable").count() == 1


def test_a_directory_that_cannot_be_made_is_recorded_as_error(admin_user: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    ds = services.create_datastore(admin_user, name="bad-dir", kind="image", path=str(tmp_path / "a-file" / "ds"))
    assert ds.state == DatastoreState.ERROR and "Not a directory" in ds.state_message
    assert Datastore.objects.get(pk=ds.pk).state == DatastoreState.ERROR


def test_a_system_datastore_with_room_again_wakes_the_scheduler(
    make_sim_host: Any, member: Any, project: Any, template: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from compute import services as compute_services
    from compute import tasks as compute_tasks
    from compute.models import VirtualMachine
    from storage.drivers.base import PoolInfo, PoolState

    make_sim_host("h")
    ds = DatastoreFactory(kind="system", free_bytes=0)
    (vm,) = compute_services.create_vms(member, project=project, template=template, name="waits")
    compute_services.place_vm(vm.pk)
    assert VirtualMachine.objects.get(pk=vm.pk).state == "PENDING"

    with django_capture_on_commit_callbacks() as queued:
        services.record_pool_info(ds.pk, PoolInfo("p", PoolState.RUNNING, 100 * GIB, 10 * GIB, 90 * GIB))
    # compute's hook queued its scheduler sweep (compute.schedule_pending), after commit
    assert [q.__qualname__.split(".")[0] for q in queued if q.__module__ == "compute.apps"] == [
        "_schedule_pending_after_commit"
    ]
    with django_capture_on_commit_callbacks() as queued:
        services.record_pool_info(ds.pk, PoolInfo("p", PoolState.RUNNING, 100 * GIB, 11 * GIB, 89 * GIB))
    assert [q for q in queued if q.__module__ == "compute.apps"] == []  # it had room already: nothing to wake

    assert compute_tasks.schedule_pending()["placed"] == 1  # what the queued sweep does
    assert VirtualMachine.objects.get(pk=vm.pk).state == "PROLOG"


def test_an_unknown_cluster_is_a_404_naming_the_field_and_creates_nothing(admin_client: Any) -> None:
    """Ids in a body resolve through the access gate (portal.api.Ref): missing is 404, as in a URL."""
    from storage.models import Datastore

    before = Datastore.objects.count()
    resp = admin_client.post("/api/v1/datastores/", {"name": "x", "kind": "image", "clusters": [999999]}, format="json")
    assert resp.status_code == 404 and resp.json()["field"] == "clusters", resp.content
    assert Datastore.objects.count() == before
