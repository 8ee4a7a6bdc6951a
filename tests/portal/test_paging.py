"""Paging of API lists: keyset cursors walk every row exactly once without COUNT(*), at the same
query count on any page; limit/offset stays for compatibility, bounded."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute import services
from tests.conftest import client_for


def test_cursor_paging_walks_every_vm_once_without_count(member: Any, project: Any, template: Any) -> None:
    services.create_vms(member, project=project, template=template, name="p", count=25, hold=True)
    client = client_for(member)
    seen: list[int] = []
    url: str | None = "/api/v1/vms/?cursor=&limit=10"
    queries: list[int] = []
    while url:
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(url).json()
        queries.append(len(ctx.captured_queries))
        assert not any("COUNT(" in q["sql"].upper() for q in ctx.captured_queries)
        seen += [vm["id"] for vm in page["results"]]
        url = page["next"]
    assert len(seen) == 25 and len(set(seen)) == 25 and seen == sorted(seen)
    assert len(set(queries)) == 1, queries  # the last page costs what the first does


def test_bad_cursor_is_404_and_bad_offset_is_400_naming_the_field(member: Any) -> None:
    """A cursor is an opaque string of the schema: one this API never returned names no page (404);
    an offset or limit outside its declared bounds is invalid input (400)."""
    client = client_for(member)
    r = client.get("/api/v1/vms/?cursor=garbage")
    assert r.status_code == 404 and r.json()["field"] == "cursor", r.content
    r = client.get("/api/v1/vms/?offset=-1")
    assert r.status_code == 400 and r.json()["field"] == "offset"
    for bad in ("0", "x", "-3"):
        r = client.get(f"/api/v1/vms/?limit={bad}")
        assert r.status_code == 400 and r.json()["field"] == "limit", (bad, r.content)
    r = client.get("/api/v1/vms/?limit=100000")
    assert r.status_code == 200  # capped, not refused


def test_limit_offset_still_counts(member: Any, project: Any, template: Any) -> None:
    services.create_vms(member, project=project, template=template, name="q", count=3, hold=True)
    body = client_for(member).get("/api/v1/vms/?limit=2&offset=1").json()
    assert body["count"] == 3 and len(body["results"]) == 2
