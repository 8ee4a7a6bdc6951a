"""Sharing privacy: only an object's managers see its share list (a recipient learns only that
it is shared with them), and sharing with a user name is no user-name oracle."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
from tests.images.factories import ready_image


@pytest.fixture
def recipients(project: Any) -> dict[str, Any]:
    """guest (member of project Q, another organization), friend (a user of the organization,
    shared with by name), third (member of project R, also shared with)."""
    q, r = ProjectFactory(), ProjectFactory()
    guest, third = UserFactory(username="guest"), UserFactory(username="third")
    MembershipFactory(user=guest, project=q)
    MembershipFactory(user=third, project=r)
    friend = UserFactory(username="friend")
    MembershipFactory(user=friend, project=ProjectFactory(organization=project.organization))
    return {"q": q, "r": r, "guest": guest, "third": third, "friend": friend}


def _share_all(member: Any, url: str, rc: dict[str, Any]) -> None:
    for body in ({"project": rc["q"].pk}, {"project": rc["r"].pk}, {"user": "friend"}):
        assert client_for(member).post(url, body, format="json").status_code == 200


def _objects(member: Any, project: Any) -> list[str]:
    tpl = VMTemplateFactory(project=project, owner=member, name="golden")
    img = ready_image(member, project, "shared-img")
    return [f"/api/v1/templates/{tpl.pk}/shares/", f"/api/v1/images/{img.pk}/shares/"]


def test_only_managers_see_the_share_list(member: Any, viewer: Any, project: Any, admin_user: Any,
                                          recipients: dict[str, Any]) -> None:  # fmt: skip
    rc = recipients
    everything = {"projects": sorted([rc["q"].pk, rc["r"].pk]), "users": ["friend"]}
    for url in _objects(member, project):
        _share_all(member, url, rc)
        assert client_for(member).get(url).json() == everything
        assert client_for(admin_user).get(url).json() == everything
        # recipients: only that it is shared with them
        assert client_for(rc["guest"]).get(url).json() == {"projects": [rc["q"].pk], "users": []}
        assert client_for(rc["third"]).get(url).json() == {"projects": [rc["r"].pk], "users": []}
        assert client_for(rc["friend"]).get(url).json() == {"projects": [], "users": ["friend"]}
        # a viewer of the owning project does not manage it: sees no recipients either
        assert client_for(viewer).get(url).json() == {"projects": [], "users": []}


def test_sharing_with_a_name_outside_the_organizations_answers_like_an_unknown_name(
    member: Any, project: Any, other_tenant: Any
) -> None:
    UserFactory(username="retired", is_active=False)
    for url in _objects(member, project):
        answers = []
        for name in ("stranger", "retired", "no-such-user-anywhere"):
            r = client_for(member).post(url, {"user": name}, format="json")
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][0] == 404 and answers[0][1]["field"] == "user"
        assert client_for(member).get(url).json() == {"projects": [], "users": []}
    # the stranger was not given anything
    assert client_for(other_tenant).get(url.removesuffix("shares/")).status_code == 404


def test_the_image_page_answers_the_same_for_existing_and_unknown_names(member: Any, project: Any,
                                                                       other_tenant: Any) -> None:  # fmt: skip
    from django.test import Client

    img = ready_image(member, project, "page-img")
    c = Client()
    c.force_login(member)
    pages = []
    for name in ("stranger", "no-such-user-anywhere"):
        r = c.post(f"/images/{img.pk}/share/", {"user": name, "op": "share"}, follow=True)
        pages.append((r.status_code, [str(m) for m in r.context["messages"]]))
    assert pages[0] == pages[1] and pages[0][1]


def test_cross_organization_sharing_goes_through_the_project(member: Any, project: Any, other_tenant: Any) -> None:
    tpl = VMTemplateFactory(project=project, owner=member)
    their_project = other_tenant.memberships.get().project_id
    url = f"/api/v1/templates/{tpl.pk}/shares/"
    assert client_for(member).post(url, {"project": their_project}, format="json").status_code == 200
    assert client_for(other_tenant).get(f"/api/v1/templates/{tpl.pk}/").status_code == 200
    assert client_for(other_tenant).get(url).json() == {"projects": [their_project], "users": []}


def test_cloud_admins_may_share_with_any_user(member: Any, project: Any, admin_user: Any, other_tenant: Any) -> None:
    tpl = VMTemplateFactory(project=project, owner=member)
    url = f"/api/v1/templates/{tpl.pk}/shares/"
    r = client_for(admin_user).post(url, {"user": "stranger"}, format="json")
    assert r.status_code == 200 and r.json()["users"] == ["stranger"]
    assert client_for(other_tenant).get(url).json() == {"projects": [], "users": ["stranger"]}
