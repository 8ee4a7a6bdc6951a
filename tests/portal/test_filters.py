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


@pytest.mark.parametrize(
    "since",
    ["0001-01-01T00:00:00%2B05:00", "9999-12-31T23:59:59-05:00", "2026-13-01T00:00:00Z", ""],
)
def test_a_moment_that_does_not_fit_is_a_400_naming_since(member: Any, since: str) -> None:
    """Dates whose UTC form leaves the calendar (year 0 or 10000) are refused, not a 500."""
    resp = client_for(member).get(f"/api/v1/events/?since={since}")
    assert resp.status_code == 400, resp.content
    assert "since" in resp.json(), resp.json()


@pytest.mark.parametrize(
    "since", ["1857-03-01T00:00:00-00:17", "0027-01-01T00:00:00%2B23:59", "1857-01-01T00:00:00.5%2B05:17:31.5"]
)
def test_a_real_moment_with_any_offset_is_accepted(member: Any, since: str) -> None:
    """PostgreSQL takes offsets up to ±15:59 without fractions: the filter sends it UTC."""
    resp = client_for(member).get(f"/api/v1/events/?since={since}")
    assert resp.status_code == 200, resp.content


@pytest.mark.parametrize(
    "path", ["/api/v1/audit/?object_type=vm%00", "/api/v1/vms/?name=a%00", "/api/v1/images/?search=%00"]
)
def test_a_text_filter_with_a_nul_matches_nothing(member: Any, project: Any, template: Any, path: str) -> None:
    """No row holds a NUL (PostgreSQL text cannot), and the schema allows any string: 200, empty."""
    services.create_vms(member, project=project, template=template, name="a", hold=True)
    resp = client_for(member).get(path)
    assert resp.status_code == 200 and resp.json()["results"] == [], resp.content
    without = client_for(member).get(path.replace("%00", ""))
    assert without.status_code == 200, without.content


def test_vm_lists_sort_search_and_refuse_unknown_states(member: Any, project: Any, template: Any) -> None:
    """``ordering`` and ``search`` do what they say; a state or an ordering that does not exist
    is a 400 naming the parameter, not an empty list (issue 14)."""
    from tenants.quotas import set_limit

    for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
        set_limit(project, resource, -1)
    made = {n: services.create_vms(member, project=project, template=template, name=n, hold=True)[0]
            for n in ("bravo", "alpha", "charlie")}  # fmt: skip
    client = client_for(member)

    def names(query: str) -> list[str]:
        resp = client.get(f"/api/v1/vms/?{query}")
        assert resp.status_code == 200, resp.content
        return [vm["name"] for vm in resp.json()["results"]]

    assert names("ordering=name") == ["alpha", "bravo", "charlie"]
    assert names("ordering=-name") == ["charlie", "bravo", "alpha"]
    assert names("search=rav") == ["bravo"]
    assert names(f"search={made['charlie'].pk}") == ["charlie"]
    assert names("state=HOLD,RUNNING&ordering=id") == ["bravo", "alpha", "charlie"]
    bad = (
        ("state=BANANA", "state"),
        ("state=HOLD,nope", "state"),
        ("state=hold", "state"),
        ("state=", "state"),
        ("ordering=password", "ordering"),
    )
    for query, field in bad:
        resp = client.get(f"/api/v1/vms/?{query}")
        assert resp.status_code == 400 and resp.json()["field"] == field, (query, resp.content)
