"""The Django admin fallback: read-only state, changes through services."""

from __future__ import annotations

from typing import Any

from django.test import Client

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S


def test_admin_lists_vms_and_terminates_through_the_service(
    admin_user: Any, member: Any, project: Any, template: Any
) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    c = Client()
    c.force_login(admin_user)
    assert c.get("/admin/compute/virtualmachine/").status_code == 200
    assert c.get(f"/admin/compute/virtualmachine/{vm.pk}/change/").status_code == 200  # read-only view
    resp = c.post(
        "/admin/compute/virtualmachine/", {"action": "terminate_hard", "_selected_action": [vm.pk]}, follow=True
    )
    assert resp.status_code == 200
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.DONE
    assert vm.state_changes.filter(to_state=S.DONE).exists()


def test_members_cannot_use_the_admin(member: Any) -> None:
    c = Client()
    c.force_login(member)
    assert c.get("/admin/compute/virtualmachine/").status_code == 302
