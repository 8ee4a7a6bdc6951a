"""Templates shared with another project or a user (guardian per-object grants), and published."""

from __future__ import annotations

from typing import Any

from tenants.models import Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory


def test_share_with_a_project_reaches_its_members_only(member: Any, project: Any, admin_user: Any) -> None:
    tpl = VMTemplateFactory(project=project, owner=member, name="golden")
    other = ProjectFactory()
    guest = UserFactory(username="guest")
    MembershipFactory(user=guest, project=other)
    outsider = UserFactory(username="outsider")
    MembershipFactory(user=outsider, project=ProjectFactory())

    assert client_for(guest).get(f"/api/v1/templates/{tpl.pk}/").status_code == 404
    resp = client_for(member).post(f"/api/v1/templates/{tpl.pk}/shares/", {"project": other.pk}, format="json")
    assert resp.status_code == 200 and resp.json() == {"projects": [other.pk], "users": []}
    assert client_for(guest).get(f"/api/v1/templates/{tpl.pk}/").status_code == 200
    assert client_for(outsider).get(f"/api/v1/templates/{tpl.pk}/").status_code == 404
    # the guest may use it (create a VM in their own project) but not change it
    body = {"name": "from-shared", "project": other.pk, "template": tpl.pk, "hold": True}
    assert client_for(guest).post("/api/v1/vms/", body, format="json").status_code == 202
    assert client_for(guest).patch(f"/api/v1/templates/{tpl.pk}/", {"vcpu": 8}, format="json").status_code == 404
    # a member who leaves the project loses the share with it
    Membership.objects.filter(user=guest, project=other).delete()
    assert client_for(guest).get(f"/api/v1/templates/{tpl.pk}/").status_code == 404
    client_for(member).delete(f"/api/v1/templates/{tpl.pk}/shares/", {"project": other.pk}, format="json")
    assert client_for(member).get(f"/api/v1/templates/{tpl.pk}/shares/").json() == {"projects": [], "users": []}


def test_share_with_a_user_and_refusals(member: Any, viewer: Any, project: Any) -> None:
    tpl = VMTemplateFactory(project=project, owner=member)
    friend = UserFactory(username="friend")  # in another project of the organization
    MembershipFactory(user=friend, project=ProjectFactory(organization=project.organization))
    assert (
        client_for(viewer).post(f"/api/v1/templates/{tpl.pk}/shares/", {"user": "friend"}, format="json").status_code
        == 404
    )
    assert client_for(friend).get(f"/api/v1/templates/{tpl.pk}/").status_code == 404
    assert (
        client_for(member).post(f"/api/v1/templates/{tpl.pk}/shares/", {"user": "friend"}, format="json").status_code
        == 200
    )
    assert client_for(friend).get(f"/api/v1/templates/{tpl.pk}/").status_code == 200
    bad = client_for(member).post(f"/api/v1/templates/{tpl.pk}/shares/", {"user": "nobody"}, format="json")
    assert bad.status_code == 404 and "user" in bad.json()


def test_publication_is_for_cloud_admins(member: Any, project: Any, admin_user: Any) -> None:
    tpl = VMTemplateFactory(project=project, owner=member)
    resp = client_for(member).patch(f"/api/v1/templates/{tpl.pk}/", {"public": True}, format="json")
    assert resp.status_code == 403
    stranger = UserFactory(username="stranger2")
    MembershipFactory(user=stranger, project=ProjectFactory())
    assert client_for(stranger).get(f"/api/v1/templates/{tpl.pk}/").status_code == 404
    assert (
        client_for(admin_user).patch(f"/api/v1/templates/{tpl.pk}/", {"public": True}, format="json").status_code == 200
    )
    assert client_for(stranger).get(f"/api/v1/templates/{tpl.pk}/").status_code == 200
