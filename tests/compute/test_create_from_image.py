"""Creating VMs from one's own image without a template (issue 14): the service gives each VM
a copy of the image as its first disk (storage) and NICs on the networks asked for (network),
counts the disk in the quota, and refuses what is not the creator's to use."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from compute.models import VirtualMachine
from network.models import VMNic
from portal.errors import InvalidInput, NotFound
from storage.models import VMDisk
from tenants import quotas
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.images.factories import ready_image
from tests.network.factories import make_network

pytestmark = pytest.mark.django_db


def _used(project: Any, resource: str) -> int:
    return next(q.used for q in quotas.usage(project) if q.resource == resource)


def test_vms_from_an_image_get_its_copy_and_the_networks_asked_for(member: Any, project: Any) -> None:
    img = ready_image(member, project, "mine")
    net = make_network(member, project)
    vms = services.create_vms(
        member, project=project, image=img.pk, name="own", count=2, vcpu=1, memory_mb=512, disk_gb=2,
        networks=[net.pk], hold=True,
    )  # fmt: skip
    assert [vm.template_id for vm in vms] == [None, None]
    for vm in vms:
        disk = VMDisk.objects.get(vm=vm, kind="disk")
        assert disk.image_id == img.pk and disk.target == "vda" and disk.size_bytes == 2 * 1024**3
        assert VMNic.objects.filter(vm=vm, network=net).count() == 1
    assert (vms[0].vcpu, vms[0].memory_mb, vms[0].disk_gb) == (1, 512, 2)
    assert _used(project, "system_disk_gb") == 4 and _used(project, "vcpu") == 2


def test_bad_or_foreign_sources_are_refused_and_change_nothing(member: Any, project: Any, template: Any) -> None:
    other = ProjectFactory()
    stranger = UserFactory(username="img-stranger")
    MembershipFactory(user=stranger, project=other)
    theirs = ready_image(stranger, other, "theirs")
    mine = ready_image(member, project, "mine")
    before = VirtualMachine.objects.count()
    with pytest.raises(NotFound) as exc:
        services.create_vms(member, project=project, image=theirs.pk, name="x", vcpu=1, memory_mb=256)
    assert exc.value.field == "image"
    with pytest.raises(InvalidInput) as exc:
        services.create_vms(member, project=project, image=mine.pk, name="x", memory_mb=256)
    assert exc.value.field == "vcpu"
    with pytest.raises(InvalidInput) as exc:
        services.create_vms(member, project=project, name="x", vcpu=1, memory_mb=256)
    assert exc.value.field == "template"
    with pytest.raises(InvalidInput):
        services.create_vms(member, project=project, template=template, image=mine.pk, name="x")
    with pytest.raises(InvalidInput) as exc:
        services.create_vms(member, project=project, image=mine.pk, name="x", vcpu=1, memory_mb=256, networks=["a"])
    assert exc.value.field == "networks"
    assert VirtualMachine.objects.count() == before


# --------------------------------------------------------------------------------------------
# the REST API accepts the same
# --------------------------------------------------------------------------------------------
def test_api_creates_from_an_image(member: Any, project: Any) -> None:
    from tests.conftest import client_for

    img = ready_image(member, project, "api-img")
    net = make_network(member, project)
    body = {"name": "api", "project": project.pk, "image": img.pk, "vcpu": 1, "memory_mb": 256, "disk_gb": 1,
            "networks": [net.pk], "hold": True}  # fmt: skip
    resp = client_for(member).post("/api/v1/vms/", body, format="json")
    assert resp.status_code == 202, resp.content
    vm = VirtualMachine.objects.get(pk=resp.json()[0]["id"])
    assert vm.template_id is None and VMDisk.objects.get(vm=vm, kind="disk").image_id == img.pk
    assert VMNic.objects.filter(vm=vm, network=net).exists()


@pytest.mark.parametrize(
    "body,field,code",
    [
        ({}, "template", 400),  # neither
        ({"image": "{I}"}, "vcpu", 400),  # no size
        ({"image": "{I}", "vcpu": 1}, "memory_mb", 400),
        ({"image": "{I}", "vcpu": 1, "memory_mb": 256, "template": "{T}"}, "template", 400),  # both
        ({"template": "{T}", "disk_gb": 5}, "disk_gb", 400),
        ({"image": 999999, "vcpu": 1, "memory_mb": 256}, "image", 404),
        ({"image": "{I}", "vcpu": 1, "memory_mb": 256, "networks": [999999]}, "networks", 404),
        ({"image": "{I}", "vcpu": 1, "memory_mb": 256, "disk_gb": 10**9}, "disk_gb", 400),
    ],
)
def test_api_bad_image_creates_are_refused_naming_the_field(
    body: dict[str, Any], field: str, code: int, member: Any, project: Any, template: Any
) -> None:
    from tests.conftest import client_for

    img = ready_image(member, project, "api-bad")
    fill = {"{I}": img.pk, "{T}": template.pk}
    data = {
        "name": "no",
        "project": project.pk,
        **{k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()},
    }
    resp = client_for(member).post("/api/v1/vms/", data, format="json")
    assert resp.status_code == code, resp.content
    assert field in resp.json(), resp.json()
    assert not VirtualMachine.objects.exists()
