"""The event stream: every state change and action is an event, scoped like everything else."""

from __future__ import annotations

from typing import Any

from compute import services
from monitoring.models import Event
from tests.compute.helpers import act, settle
from tests.conftest import client_for


def test_life_cycle_events_in_order_and_filtered(member: Any, project: Any, template: Any, make_sim_host: Any) -> None:
    make_sim_host("a")
    (vm,) = services.create_vms(member, project=project, template=template, name="ev")
    settle()
    act(member, vm, "poweroff")
    settle()
    api = client_for(member)
    types = [
        e["type"]
        for e in api.get(f"/api/v1/events/?object_id={vm.pk}&object_type=virtualmachine&limit=100").json()["results"]
    ]
    states = [t.rsplit(".", 1)[1] for t in reversed(types) if ".state." in t]
    assert states == ["PENDING", "PROLOG", "BOOT", "RUNNING", "SHUTDOWN", "POWEROFF"]
    assert "virtualmachine.action.create" in types and "virtualmachine.action.poweroff" in types
    only_states = api.get("/api/v1/events/?type=virtualmachine.state.*").json()["results"]
    assert only_states and all(e["type"].startswith("virtualmachine.state.") for e in only_states)
    last = max(e["id"] for e in only_states)
    assert api.get(f"/api/v1/events/?after={last}&type=virtualmachine.state.*").json()["count"] == 0


def test_events_are_scoped(
    member: Any, other_tenant: Any, admin_user: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")  # host events: admins only
    services.create_vms(member, project=project, template=template, name="x", hold=True)
    assert client_for(other_tenant).get("/api/v1/events/").json()["count"] == 0
    mine = client_for(member).get("/api/v1/events/").json()["results"]
    assert mine and all(e["project"] == project.pk for e in mine)
    admin_types = {e["type"] for e in client_for(admin_user).get("/api/v1/events/?limit=200").json()["results"]}
    assert "host.state.MONITORED" in admin_types
    assert Event.objects.filter(type="host.action.register").exists()


def test_the_event_page_pages_without_counting_the_log(member: Any, project: Any) -> None:
    """The log only grows: the page reads one row more than it shows (is there a next page?) and
    never counts the table; the first page is where live events arrive (issue 13)."""
    from django.test import Client

    from monitoring.events import emit
    from tests.conftest import page_queries

    c = Client()
    c.force_login(member)
    for i in range(30):
        emit("test.tick", project, project=project, n=i)
    few, page = page_queries(c, "/events/?per_page=25")
    assert page.count("test.tick") == 25
    assert "Page 1<" in page and 'rel="next"' in page and 'id="event-rows"' in page
    second = page_queries(c, "/events/?per_page=25&page=2")[1]
    assert 'rel="next"' not in second and 'rel="prev"' in second
    assert 'id="event-rows"' not in second  # live events do not land on an older page
    for i in range(100):
        emit("test.tick", project, project=project, n=i)
    many, page = page_queries(c, "/events/?per_page=25")
    assert many == few
    assert "COUNT(" not in str(page_sql(c, "/events/"))


def page_sql(client: Any, url: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return [q["sql"] for q in ctx.captured_queries if "monitoring_event" in q["sql"]]
