"""The compute pages: what each role sees and may do, through the browser's forms."""

from __future__ import annotations

from typing import Any

from django.test import Client

from compute import services
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from tests.factories import MembershipFactory

from .helpers import settle


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_member_creates_a_vm_from_the_form_and_sees_it(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    c = browser(member)
    page = c.get("/compute/vms/")
    assert page.status_code == 200 and b"Create a VM" in page.content
    resp = c.post("/compute/vms/create/", {"name": "web-1", "template": template.pk, "count": 1})
    assert resp.status_code == 302
    settle()
    page = c.get("/compute/vms/").content.decode()
    vm = VirtualMachine.objects.get(name="web-1")
    assert f'id="vm-{vm.pk}"' in page and "RUNNING" in page
    assert 'aria-label="Power off web-1"' in page and 'aria-label="Resume web-1"' not in page


def test_bad_create_input_is_shown_beside_the_field(member: Any, project: Any, template: Any) -> None:
    resp = browser(member).post("/compute/vms/create/", {"name": "bad/name", "template": template.pk, "count": 1})
    assert resp.status_code == 400
    assert b"name:" in resp.content or b"Names are" in resp.content
    assert not VirtualMachine.objects.exists()


def test_illegal_action_shows_the_409_message_and_changes_nothing(member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="h", hold=True)
    resp = browser(member).post(f"/compute/vms/{vm.pk}/action/", {"action": "poweroff"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and resp["X-Nephele-Status"] == "409"
    assert b"cannot poweroff a VM in state HOLD" in resp.content
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_viewer_sees_no_buttons_and_cannot_act(viewer: Any, member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="h", hold=True)
    c = browser(viewer)
    page = c.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert "h" in page and "Terminate" not in page
    resp = c.post(f"/compute/vms/{vm.pk}/action/", {"action": "terminate"})
    assert resp.status_code == 302
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.HOLD


def test_other_tenant_gets_404(other_tenant: Any, member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="secret", hold=True)
    c = browser(other_tenant)
    assert c.get(f"/compute/vms/{vm.pk}/").status_code == 404
    assert c.post(f"/compute/vms/{vm.pk}/action/", {"action": "terminate"}).status_code == 404
    assert b"secret" not in c.get("/compute/vms/").content


def test_host_pages_are_for_admins(member: Any, admin_user: Any, make_sim_host: Any, tmp_path: Any) -> None:
    host = make_sim_host("a")
    assert browser(member).get("/compute/hosts/").status_code == 404
    c = browser(admin_user)
    page = c.get("/compute/hosts/").content.decode()
    assert f'id="host-{host.pk}"' in page and "MONITORED" in page
    assert c.get(f"/compute/hosts/{host.pk}/").status_code == 200
    resp = c.post(
        "/compute/hosts/register/", {"name": "b", "uri": "http://nope", "hypervisor": "test", "labels": "ssd=yes"}
    )
    assert resp.status_code == 400 and b"uri must be a libvirt URI" in resp.content
    c.post(f"/compute/hosts/{host.pk}/action/", {"action": "disable"})
    assert Host.objects.get(pk=host.pk).state == "DISABLED"


def test_dashboard_and_templates(member: Any, admin_user: Any, project: Any, template: Any, make_sim_host: Any) -> None:
    make_sim_host("a")
    assert b"Dashboard" in browser(member).get("/").content
    admin_page = browser(admin_user).get("/").content
    assert b"Capacity by cluster" in admin_page
    c = browser(member)
    assert template.name.encode() in c.get("/compute/templates/").content
    resp = c.post(
        "/compute/templates/", {"name": "mine", "vcpu": 1, "memory_mb": 256, "disk_gb": 0, "labels": "zone=a"}
    )
    assert resp.status_code == 302
    assert project.vm_templates.get(name="mine").required_labels == {"zone": "a"}


def test_project_switcher_only_offers_my_projects(member: Any, project: Any) -> None:
    from tests.factories import ProjectFactory

    second = ProjectFactory()
    MembershipFactory(user=member, project=second)
    foreign = ProjectFactory()
    c = browser(member)
    c.post("/project/switch/", {"project": second.pk, "next": "/compute/vms/"})
    assert c.session["project_id"] == second.pk
    c.post("/project/switch/", {"project": foreign.pk, "next": "https://evil.example/"})
    assert c.session["project_id"] == second.pk
