"""The storage manager's part of the VM's life checked where it is used: a template disk's image
is checked against the VM creator's rights when the VM is made (issue 12: a revoked share still
gave B new copies of A's image), and the volumes of a VM that ends are released through the
volume service, each with its audit row and event (they used to go back by a bulk UPDATE)."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services as compute
from compute.models import VirtualMachine
from compute.states import VMState as S
from images import services as images
from monitoring.models import AuditRecord, Event
from portal.errors import Conflict
from storage.models import VMDisk, Volume
from storage.services import disks
from storage.services import volumes as svc
from tenants import quotas
from tests.compute.helpers import act
from tests.conftest import client_for

from .volumes_support import MIB, make_image, run


def _state(project: Any) -> tuple[Any, ...]:
    return (
        VirtualMachine.objects.count(),
        VMDisk.objects.count(),
        [(q.resource, q.used) for q in quotas.usage(project)],
    )


def test_a_revoked_image_share_stops_new_copies(
    member: Any, project: Any, template: Any, other_tenant: Any, image_ds: Any
) -> None:
    theirs = other_tenant.memberships.get().project
    image = make_image(other_tenant, theirs, image_ds, "a-base")
    images.share_image(other_tenant, image.pk, project_id=project.pk)
    disks.add_template_disk(member, template.pk, image=image.pk)
    (first,) = compute.create_vms(member, project=project, template=template, name="before", hold=True)
    assert VMDisk.objects.get(vm=first).backing == image.path

    images.unshare_image(other_tenant, image.pk, project_id=project.pk)
    before = _state(project)
    resp = client_for(member).post(
        "/api/v1/vms/", {"name": "after", "project": project.pk, "template": template.pk}, format="json"
    )
    assert resp.status_code == 409 and resp.json()["field"] == "template", resp.content
    with pytest.raises(Conflict):
        compute.create_vms(member, project=project, template=template, name="after", hold=True)
    assert _state(project) == before and not VirtualMachine.objects.filter(name="after").exists()


def test_public_and_own_images_still_make_vms(member: Any, project: Any, template: Any, image_ds: Any) -> None:
    own = make_image(member, project, image_ds, "own")
    disks.add_template_disk(member, template.pk, image=own.pk)
    (vm,) = compute.create_vms(member, project=project, template=template, name="ok", hold=True)
    assert VMDisk.objects.filter(vm=vm, image=own).exists()


def test_volumes_of_a_vm_that_ends_are_released_through_the_service(
    eager: Any, member: Any, project: Any, template: Any, system_ds: Any
) -> None:
    vol = run(eager, svc.create_volume, member, project=project, name="data", size_bytes=64 * MIB)
    (vm,) = compute.create_vms(member, project=project, template=template, name="holder", hold=True)
    run(eager, svc.attach_volume, member, vol.pk, vm.pk)
    assert Volume.objects.get(pk=vol.pk).state == "in-use"

    act(member, vm, "terminate", hard=True)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.DONE
    vol.refresh_from_db()
    assert (vol.state, vol.vm_id, vol.target, vol.operation) == ("available", None, "", "")
    assert not VMDisk.objects.filter(volume=vol).exists()
    released = AuditRecord.objects.get(object_type="volume", object_id=str(vol.pk), action="release")
    assert released.actor_name == "system" and released.detail["vm"] == vm.pk and released.project == project
    assert Event.objects.filter(type="volume.state.available", object_id=str(vol.pk), payload__from_state="in-use")
    svc.release_volumes_of(vm)  # idempotent: nothing left to release, nothing recorded
    assert AuditRecord.objects.filter(object_type="volume", object_id=str(vol.pk), action="release").count() == 1


def test_an_image_a_template_uses_is_not_deleted_from_under_it(
    member: Any, project: Any, template: Any, image_ds: Any
) -> None:
    """Issue 11: deleting the image answered 204, cascaded the template's disk away, and VMs
    made from the template then ran with no disk. Now the API answers 409 naming the template."""
    base = make_image(member, project, image_ds, "base")
    disks.add_template_disk(member, template.pk, image=base.pk)
    resp = client_for(member).delete(f"/api/v1/images/{base.pk}/")
    assert resp.status_code == 409, resp.content
    assert resp.json()["field"] == "image" and f"template {template.name} (#{template.pk})" in resp.json()["detail"]
    assert template.disks.filter(image=base).exists()
    (vm,) = compute.create_vms(member, project=project, template=template, name="still", hold=True)
    assert VMDisk.objects.filter(vm=vm, image=base).exists()
