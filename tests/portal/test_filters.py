"""The list filters' rules (portal/filters.py), through the API: what the schema declares is
what is accepted, and nothing else is silently ignored."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from tests.conftest import client_for


@pytest.mark.parametrize(
    "query,field",
    [
        ("project=", "project"),  # an id given but empty
        ("project=abc", "project"),
        ("visibility=", "visibility"),  # an enum given but empty
        ("visibility=everyone", "visibility"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(member: Any, query: str, field: str) -> None:
    resp = client_for(member).get(f"/api/v1/networks/?{query}")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()


def test_a_boolean_filter_takes_true_or_false_only(member: Any, template: Any) -> None:
    client = client_for(member)
    assert client.get("/api/v1/templates/?public=false").status_code == 200
    resp = client.get("/api/v1/templates/?public=yes")
    assert resp.status_code == 400 and "public" in resp.json()


def test_an_id_out_of_range_or_foreign_matches_nothing(
    member: Any, project: Any, template: Any, other_tenant: Any
) -> None:
    services.create_vms(member, project=project, template=template, name="mine", hold=True)
    client = client_for(member)
    assert client.get(f"/api/v1/vms/?project={project.pk}").json()["results"]
    theirs = other_tenant.memberships.get().project_id
    for value in (theirs, 2**70, -1):
        resp = client.get(f"/api/v1/vms/?project={value}")
        assert resp.status_code == 200 and resp.json()["results"] == [], (value, resp.content)
