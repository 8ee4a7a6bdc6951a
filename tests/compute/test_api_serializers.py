"""The VM list's hand-written representation (``VMSerializer.to_representation``, issue 13) gives
exactly what DRF's field-by-field serialization of the declared fields gives, for VMs in every
kind of state (with and without a host, a template, a cluster), as a tenant and as an admin."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.serializers import ModelSerializer
from rest_framework.test import APIRequestFactory

from compute import services
from compute.api.serializers import VMDetailSerializer, VMSerializer
from compute.models import VirtualMachine
from compute.states import VMState as S

from .helpers import settle

pytestmark = pytest.mark.django_db


@pytest.fixture
def vms(member: Any, project: Any, template: Any, make_sim_host: Any) -> list[VirtualMachine]:
    make_sim_host("ser-1")
    running = services.create_vms(member, project=project, template=template, name="run")
    held = services.create_vms(member, project=project, template=template, name="held", hold=True)
    settle()
    orphan = services.create_vms(member, project=project, template=template.pk, name="orphan", hold=True)
    VirtualMachine.objects.filter(pk=orphan[0].pk).update(template=None, required_labels={"zone": "a"})
    rows = list(VirtualMachine.objects.select_related("host", "owner").order_by("pk"))
    assert {vm.state for vm in rows} >= {S.RUNNING, S.HOLD}, [vm.state for vm in rows]
    assert any(vm.host_id for vm in rows) and any(vm.host_id is None for vm in rows)
    assert len(running + held) == 2
    return rows


@pytest.mark.parametrize("who", ["member", "admin_user"])
@pytest.mark.parametrize("serializer", [VMSerializer, VMDetailSerializer])
def test_the_fast_representation_is_drfs(
    vms: list[VirtualMachine], who: str, serializer: type[VMSerializer], request: Any
) -> None:
    user = request.getfixturevalue(who)
    http = APIRequestFactory().get("/api/v1/vms/")
    http.user = user
    ser = serializer(context={"request": http})
    for vm in vms:
        fast = ser.to_representation(vm)
        generic = ModelSerializer.to_representation(ser, vm)
        assert fast == dict(generic), vm.name
        assert list(fast) == list(generic), "the same keys in the same order"


def test_the_list_api_uses_it(vms: list[VirtualMachine], member: Any) -> None:
    from tests.conftest import client_for

    body = client_for(member).get("/api/v1/vms/?limit=50").json()
    by_id = {row["id"]: row for row in body["results"]}
    http = APIRequestFactory().get("/api/v1/vms/")
    http.user = member
    ser = VMSerializer(context={"request": http})
    for vm in vms:
        assert by_id[vm.pk] == dict(ModelSerializer.to_representation(ser, vm))
