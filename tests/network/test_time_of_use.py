"""The network manager's part of "every reference resolved at the time of use" (issue 12): a
template NIC's network and security groups are checked against the VM creator's rights when the
VM is made, not only when the NIC was added to the template. A network made private again makes
no new NIC (409 naming the template's NIC), and nothing is created or consumed."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services as compute
from compute.models import VirtualMachine
from network.models import Lease, VMNic
from network.services import networks, nics, secgroups
from portal.errors import Conflict
from tenants import quotas
from tests.conftest import client_for

from .factories import make_network

pytestmark = pytest.mark.django_db


def _state(project: Any) -> tuple[Any, ...]:
    return (
        VirtualMachine.objects.count(),
        VMNic.objects.count(),
        Lease.objects.count(),
        [(q.resource, q.used) for q in quotas.usage(project)],
    )


def test_a_network_made_private_again_gives_no_new_nic(
    member: Any, project: Any, template: Any, other_tenant: Any, admin_user: Any
) -> None:
    theirs = other_tenant.memberships.get().project
    net = make_network(admin_user, theirs, "shared", "10.9.0.0/24", visibility="shared")
    nics.add_template_nic(member, template.pk, network=net.pk)
    (first,) = compute.create_vms(member, project=project, template=template, name="before", hold=True)
    assert VMNic.objects.filter(vm=first, network=net).exists()

    networks.update_network(admin_user, net.pk, visibility="private")
    before = _state(project)
    resp = client_for(member).post(
        "/api/v1/vms/", {"name": "after", "project": project.pk, "template": template.pk}, format="json"
    )
    assert resp.status_code == 409, resp.content
    assert resp.json()["field"] == "template" and "network shared" in resp.json()["detail"]
    with pytest.raises(Conflict):
        compute.create_vms(member, project=project, template=template, name="after", hold=True)
    assert _state(project) == before and not VirtualMachine.objects.filter(name="after").exists()


def test_own_networks_and_groups_still_make_nics(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project, "own", "10.8.0.0/24")
    group = secgroups.create_group(member, project=project, name="web")
    nics.add_template_nic(member, template.pk, network=net.pk, security_groups=[group.pk])
    (vm,) = compute.create_vms(member, project=project, template=template, name="ok", hold=True)
    nic = VMNic.objects.get(vm=vm)
    assert nic.network == net and list(nic.security_groups.all()) == [group]
