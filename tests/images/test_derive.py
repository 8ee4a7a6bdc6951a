"""Data blocks, clones, conversions (real qemu-img, tasks run in-process after commit, and once
through a real Celery worker), delete refused while a VM uses the image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from compute import services as compute_services
from images import qemu, tasks
from images.models import Image, ImageState
from images.services import delete_image, derive
from portal.errors import Conflict, InvalidInput
from tenants.quotas import QuotaUsage, set_limit
from tests.conftest import wait_for

from .factories import ready_image


def _run_tasks(callbacks: list[Any]) -> None:
    """Run what the service queued on commit, as the worker would (task bodies in-process)."""
    for cb in callbacks:
        cb()


@pytest.fixture
def eager(settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from portal.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_datablock_is_an_empty_sparse_image(member_client, project, datastore) -> None:
    r = member_client.post(
        "/api/v1/images/datablock/", {"project": project.pk, "name": "data", "size_gb": 20}, format="json"
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["state"] == "ready" and body["type"] == "datablock" and body["virtual_size_bytes"] == 20 << 30
    assert qemu.info(Image.objects.get(pk=body["id"]).path, "qcow2").virtual_size == 20 << 30
    r = member_client.post(
        "/api/v1/images/datablock/", {"project": project.pk, "name": "d2", "size_gb": 5000}, format="json"
    )
    assert r.status_code == 400 and r.json()["field"] == "size_gb" and "between 1 and 1024" in r.json()["detail"]


def test_clone_into_another_datastore_with_progress(
    member, project, datastore, datastore2, eager, django_capture_on_commit_callbacks
) -> None:
    src = ready_image(member, project, "src", datastore, size="32M")
    with django_capture_on_commit_callbacks(execute=True):
        clone = derive.clone_image(member, src.pk, name="copy", datastore=datastore2.pk)
    clone.refresh_from_db()
    assert clone.state == ImageState.READY and clone.progress == 100
    assert clone.derived_from_id == src.pk and clone.format == "qcow2"
    assert Path(clone.path).parent == Path(datastore2.path).resolve()
    assert clone.virtual_size_bytes == src.virtual_size_bytes and len(clone.sha256) == 64
    assert QuotaUsage.objects.get(project=project, user__isnull=True, resource="images").used == 2


@pytest.mark.parametrize("fmt", ["raw", "vmdk", "vdi", "vhdx"])
def test_convert_makes_a_new_image_in_the_format(
    member, project, datastore, eager, django_capture_on_commit_callbacks, fmt
) -> None:
    src = ready_image(member, project, "src", datastore, size="8M")
    seen: list[float] = []
    real = derive.report_progress
    derive.report_progress = lambda pk, pct: (seen.append(pct), real(pk, pct))  # type: ignore[assignment]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            new = derive.convert_image(member, src.pk, format=fmt)
    finally:
        derive.report_progress = real  # type: ignore[assignment]
    new.refresh_from_db()
    assert new.state == ImageState.READY and new.format == fmt and new.name == f"src-{fmt}"
    assert qemu.info(new.path, fmt).virtual_size == 8 << 20
    assert seen and seen[-1] == 100.0  # qemu-img's progress reached the service
    src.refresh_from_db()
    assert src.format == "qcow2" and src.state == ImageState.READY  # the source is untouched


def test_convert_task_is_idempotent_and_refuses_bad_requests(
    member, project, datastore, django_capture_on_commit_callbacks
) -> None:
    src = ready_image(member, project, "src", datastore, size="8M")
    with django_capture_on_commit_callbacks() as queued:
        new = derive.convert_image(member, src.pk, format="raw")
    assert queued  # the task goes out after commit, not before
    assert Image.objects.get(pk=new.pk).state == ImageState.CONVERTING
    assert tasks.convert_image.run(new.pk) == "ok"
    assert tasks.convert_image.run(new.pk) == "stale"  # a repeated message does nothing
    assert [p.name for p in Path(datastore.path).iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(InvalidInput, match="already qcow2"):
        derive.convert_image(member, src.pk, format="qcow2")
    with pytest.raises(InvalidInput, match="format must be one of"):
        derive.convert_image(member, src.pk, format="vpc")


def test_failed_conversion_ends_in_error_with_no_file(
    member, project, datastore, django_capture_on_commit_callbacks
) -> None:
    src = ready_image(member, project, "src", datastore, size="8M")
    with django_capture_on_commit_callbacks():
        new = derive.convert_image(member, src.pk, format="vdi")
    os.unlink(src.path)  # the source vanished under the task
    assert tasks.convert_image.run(new.pk) == "failed"
    new.refresh_from_db()
    assert new.state == ImageState.ERROR and "qemu-img convert failed" in new.state_message
    assert not Path(new.path).exists() and not Path(new.path + ".tmp").exists()


def test_delete_refused_while_a_vm_uses_it_naming_the_vm(member, project, datastore, template) -> None:
    from storage.models import VMDisk

    img = ready_image(member, project, "busy", datastore)
    (vm,) = compute_services.create_vms(member, project=project, template=template, name="web-1", hold=True)
    VMDisk.objects.create(vm=vm, image=img, path="/nonexistent/disk.qcow2")
    with pytest.raises(Conflict, match=r"used by VM web-1 \(#\d+\)"):
        delete_image(member, img.pk)
    assert Image.objects.filter(pk=img.pk).exists() and Path(img.path).exists()


def test_delete_refused_while_a_clone_reads_it(member, project, datastore, django_capture_on_commit_callbacks) -> None:
    src = ready_image(member, project, "src", datastore)
    with django_capture_on_commit_callbacks():
        derive.clone_image(member, src.pk)
    with pytest.raises(Conflict, match="being cloned or converted"):
        delete_image(member, src.pk)


def test_clone_takes_the_images_quota(member, project, datastore) -> None:
    src = ready_image(member, project, "src", datastore)
    set_limit(project, "images", 1)
    from tenants.quotas import QuotaExceeded

    with pytest.raises(QuotaExceeded, match="images 1 of 1 used"):
        derive.clone_image(member, src.pk)
    assert Image.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_convert_through_the_api_on_a_real_celery_worker(agent, member_client, member, project, datastore) -> None:
    src = ready_image(member, project, "src", datastore, size="64M")
    r = member_client.post(f"/api/v1/images/{src.pk}/action/", {"action": "convert", "format": "vmdk"}, format="json")
    assert r.status_code == 202 and r.json()["state"] == "converting"
    pk = r.json()["id"]
    wait_for(lambda: Image.objects.get(pk=pk).state == ImageState.READY, timeout=60)
    body = member_client.get(f"/api/v1/images/{pk}/").json()
    assert body["format"] == "vmdk" and body["progress"] == 100 and body["derived_from"] == src.pk
