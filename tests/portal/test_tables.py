"""The shared table component (portal/tables.py) through the VM list page: server-side paging
and sorting that compose with the filters, bad parameters that fall back instead of failing,
and a page whose cost does not grow with the data (the same number of queries at 5 VMs and at
120)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from compute import services
from tenants.quotas import set_limit
from tests.conftest import page_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def roomy(project: Any) -> Any:
    for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
        set_limit(project, resource, -1)
    return project


def _make(member: Any, project: Any, template: Any, count: int, prefix: str = "vm") -> None:
    services.create_vms(member, project=project, template=template, name=prefix, count=count, hold=True)


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr id="vm-\d+"[^>]*>.*?<a class="name" href="[^"]+">([^<]+)</a>', page, re.S)


def _get(member: Any, query: str = "") -> str:
    c = Client()
    c.force_login(member)
    resp = c.get(f"/compute/vms/{query}")
    assert resp.status_code == 200
    return resp.content.decode()


def test_pages_of_fifty_newest_first_with_a_pager(member: Any, roomy: Any, template: Any) -> None:
    _make(member, roomy, template, 60)
    first = _get(member)
    assert len(_rows(first)) == 50
    assert "1–50 of 60" in first and "Page 1 of 2" in first
    second = _get(member, "?page=2")
    assert len(_rows(second)) == 10 and "51–60 of 60" in second
    assert not set(_rows(first)) & set(_rows(second))  # no row twice, none lost
    assert len(set(_rows(first)) | set(_rows(second))) == 60
    assert len(_rows(_get(member, "?per_page=25"))) == 25


def test_sorting_by_a_column_both_ways_and_the_header_says_so(member: Any, roomy: Any, template: Any) -> None:
    for name in ("charlie", "alpha", "bravo"):
        _make(member, roomy, template, 1, name)
    up = _get(member, "?sort=name")
    assert _rows(up) == ["alpha", "bravo", "charlie"]
    assert 'aria-sort="ascending"' in up and 'href="?sort=-name"' in up  # a second click flips it
    assert _rows(_get(member, "?sort=-name")) == ["charlie", "bravo", "alpha"]
    assert _rows(_get(member)) == ["bravo", "alpha", "charlie"]  # default: newest first


def test_paging_keeps_the_filters_and_a_filter_starts_at_page_one(member: Any, roomy: Any, template: Any) -> None:
    _make(member, roomy, template, 30, "web")
    _make(member, roomy, template, 30, "db")
    page = _get(member, "?q=web&per_page=25")
    assert len(_rows(page)) == 25 and "1–25 of 30" in page
    assert 'href="?q=web&amp;per_page=25&amp;page=2"' in page
    page2 = _get(member, "?q=web&per_page=25&page=2")
    assert all(name.startswith("web") for name in _rows(page2)) and len(_rows(page2)) == 5
    chip = re.search(r'<a class="chip[^"]*" href="([^"]+)"', page2)
    assert chip and not re.search(r"[?;]page=", chip.group(1)), chip  # a state filter starts at page one


@pytest.mark.parametrize("query", ["?sort=password", "?page=999", "?page=-3", "?page=x&per_page=7", "?sort=-"])
def test_bad_sort_or_page_falls_back(member: Any, roomy: Any, template: Any, query: str) -> None:
    _make(member, roomy, template, 3)
    assert len(_rows(_get(member, query))) == 3


def test_the_page_costs_the_same_queries_at_5_and_at_120_vms(member: Any, roomy: Any, template: Any) -> None:
    c = Client()
    c.force_login(member)
    _make(member, roomy, template, 5)
    few, _page = page_queries(c, "/compute/vms/")
    _make(member, roomy, template, 100, "more")
    _make(member, roomy, template, 15, "most")
    assert page_queries(c, "/compute/vms/")[0] == few


def test_the_host_list_pages_sorts_and_costs_the_same_queries_at_3_and_at_60_hosts(
    admin_user: Any, make_sim_host: Any
) -> None:
    c = Client()
    c.force_login(admin_user)
    for i in range(3):
        make_sim_host(f"h{i:02d}")
    few, page = page_queries(c, "/compute/hosts/?sort=-name")
    assert re.findall(r'<tr id="host-\d+"', page) and "1–3 of 3" in page
    for i in range(3, 60):
        make_sim_host(f"h{i:02d}")
    many, page = page_queries(c, "/compute/hosts/?sort=-name")
    assert many == few
    names = re.findall(r'<a class="name" href="/compute/hosts/\d+/">([^<]+)</a>', page)
    assert len(names) == 50 and names[0] == "h59" and names == sorted(names, reverse=True)
    assert "1–50 of 60" in page and "60 registered" in page


@pytest.mark.parametrize(
    ("url", "name", "hide"),
    [
        ("/network/", "networks", "subnets"),
        ("/storage/volumes/", "volumes", "datastore"),
        ("/images/", "images", "type"),
        ("/events/", "events", "details"),
    ],
)
def test_every_list_has_the_column_chooser(member: Any, project: Any, url: str, name: str, hide: str) -> None:
    """Column choice (issue 14) on the project lists, as on the VM and host lists: the chooser is
    there, and the chosen columns are hidden by one style rule scoped to the table."""
    c = Client()
    c.force_login(member)
    session = c.session
    session["project_id"] = project.pk
    session.save()
    page = c.get(url).content.decode()
    assert f'id="{name}-columns"' in page and f'data-table="{name}"' in page, url
    shown = re.findall(r'name="show" value="([a-z_]+)"', page)
    assert hide in shown
    page = c.get(f"{url}?columns=1&" + "&".join(f"show={k}" for k in shown if k != hide)).content.decode()
    assert f'[data-table="{name}"] .c-{hide} {{ display: none; }}' in page
