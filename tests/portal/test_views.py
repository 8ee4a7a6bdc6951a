"""Portal pages: login and logout, the layout every page shares, the dashboard, the project switcher."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client

from compute import services
from compute.states import VMState as S
from tests.compute.helpers import settle
from tests.factories import ClusterFactory, MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory

PASSWORD = "pw-123456789"  # UserFactory's


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


# --------------------------------------------------------------------------------------------
# login, logout, layout
# --------------------------------------------------------------------------------------------
def test_login_form_signs_in_and_logout_is_a_post(member: Any) -> None:
    c = Client()
    page = c.get("/login/").content.decode()
    assert 'id="id_username"' in page and 'id="id_password"' in page and 'type="submit"' in page
    assert "ws-connect" not in page  # no websocket before signing in
    bad = c.post("/login/", {"username": "member", "password": "wrong"})
    assert bad.status_code == 200 and 'role="alert"' in bad.content.decode()
    assert c.get("/").status_code == 302
    ok = c.post("/login/", {"username": "member", "password": PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert c.get("/").status_code == 200
    assert c.get("/logout/").status_code == 405  # logging out changes state: POST only
    home = c.get("/").content.decode()
    assert re.search(r'<form method="post" action="/logout/">.*?csrfmiddlewaretoken.*?Log out</button>', home, re.S)
    assert c.post("/logout/").status_code == 302
    assert c.get("/").status_code == 302


def test_layout_has_nav_switcher_and_live_socket(member: Any, admin_user: Any, project: Any) -> None:
    page = browser(member).get("/").content.decode()
    assert 'hx-ext="ws, present-oob" ws-connect="/ws/live/"' in page
    assert 'id="live-indicator"' in page
    for label in ("Dashboard", "Virtual machines", "Templates"):
        assert re.search(rf"<a href=\"[^\"]+\"[^>]*>.*?{label}</a>", page)
    assert 'aria-current="page"' in page and ">Hosts</a>" not in page
    assert '<label for="project-switch">Project</label>' in page and f'value="{project.pk}" selected' in page
    assert ">Hosts</a>" in browser(admin_user).get("/").content.decode()
    # assets are vendored, not fetched from a CDN
    assert "https://" not in re.sub(
        r"xmlns=.http://www.w3.org/2000/svg.", "", "".join(re.findall(r'(?:src|href)="[^"]*"', page))
    )
    vendor = Path(settings.BASE_DIR) / "static" / "vendor"
    assert 'version:"2.' in (vendor / "htmx.min.js").read_text()
    assert 'htmx.defineExtension("ws"' in (vendor / "ws.js").read_text().replace("'", '"')


# --------------------------------------------------------------------------------------------
# dashboard
# --------------------------------------------------------------------------------------------
def test_member_dashboard_counts_their_project_only(member: Any, project: Any, template: Any) -> None:
    services.create_vms(member, project=project, template=template, name="a", count=2, hold=True)
    services.create_vms(member, project=project, template=template, name="p")
    other = ProjectFactory()
    stranger = UserFactory(username="stranger9")
    MembershipFactory(user=stranger, project=other)
    services.create_vms(stranger, project=other, template=VMTemplateFactory(project=other, owner=stranger), name="x")
    page = browser(member).get("/").content.decode()
    found = re.findall(
        r'<span class="n">(\d+)(?:<span class="of">[^<]*</span>)?</span><span class="l">([^<]+)</span>', page
    )
    stats = {label: int(n) for n, label in found}
    assert stats == {"virtual machines": 3, "running": 0, "pending or in progress": 1, "needing attention": 0}
    assert ">x</a>" not in page and ">a-0</a>" in page
    assert "Capacity by cluster" not in page  # operators only
    assert "Quota · " in page


def test_busiest_vms_card_shows_the_tenants_own_vms_in_a_busy_cloud(member: Any, project: Any, template: Any) -> None:
    """The top list is taken among the VMs the user may see: 60 busier VMs of another tenant
    (more than any cloud-wide cut) leave the member's own VM on their card, and none of theirs."""
    from django.utils import timezone

    from monitoring.models import Kind, Metric, Sample

    other = ProjectFactory()
    stranger = UserFactory(username="busy-stranger")
    MembershipFactory(user=stranger, project=other)
    theirs = services.create_vms(
        stranger,
        project=other,
        template=VMTemplateFactory(project=other, owner=stranger),
        name="hot",
        count=60,
        hold=True,
    )
    (mine,) = services.create_vms(member, project=project, template=template, name="mine-warm", hold=True)
    now = timezone.now()
    Sample.objects.bulk_create(
        [
            Sample(ts=now, kind=Kind.VM, object_id=vm.pk, metric=Metric.CPU_PCT, value=90.0 + i / 10)
            for i, vm in enumerate(theirs)
        ]
        + [Sample(ts=now, kind=Kind.VM, object_id=mine.pk, metric=Metric.CPU_PCT, value=12.5)]
    )
    page = browser(member).get("/").content.decode()
    card = page[page.index('id="busy-title"') :].split("</section>", 1)[0]
    assert ">mine-warm</a>" in card and "12.5%" in card
    assert "hot-" not in card and "No samples yet" not in card


def test_admin_dashboard_shows_capacity_per_cluster_and_host(
    admin_user: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("k1", vcpu=8, cluster=ClusterFactory(name="rack-9"))
    make_sim_host("loose", vcpu=4)
    services.create_vms(member, project=project, template=template, name="w")
    settle()
    page = browser(admin_user).get("/").content.decode()
    assert "Capacity by cluster" in page and "rack-9" in page and "No cluster" in page
    assert 'aria-label="rack-9 vCPU allocated"' in page and 'aria-label="rack-9 memory used (measured)"' in page
    assert 'aria-label="vCPU allocated on k1"' in page and 'aria-label="memory allocated on loose"' in page
    allocated = dict(re.findall(r'aria-label="([^"]+) vCPU allocated" aria-valuenow="(\d+)"', page))
    # the VM's 2 vCPU, on one host or the other: 2 of 8 in rack-9, or 2 of 4 unclustered
    assert (allocated["rack-9"], allocated["No cluster"]) in {("25", "0"), ("0", "50")}, allocated
    assert '2<span class="of">/2</span>' in page  # hosts monitored
    assert ">RUNNING<" in page


# --------------------------------------------------------------------------------------------
# project switcher
# --------------------------------------------------------------------------------------------
def test_switcher_changes_project_and_ignores_foreign_or_bad_input(member: Any, project: Any, template: Any) -> None:
    second = ProjectFactory()
    MembershipFactory(user=member, project=second)
    foreign = ProjectFactory()
    (vm,) = services.create_vms(member, project=second, template=VMTemplateFactory(project=second, owner=member),
                                name="in-second", hold=True)  # fmt: skip
    c = browser(member)
    resp = c.post("/project/switch/", {"project": second.pk, "next": "/compute/vms/"})
    assert resp.status_code == 302 and resp["Location"] == "/compute/vms/"
    assert c.session["project_id"] == second.pk
    assert f'id="vm-{vm.pk}"' in c.get("/compute/vms/").content.decode()
    resp = c.post("/project/switch/", {"project": foreign.pk, "next": "https://evil.example/"})
    assert resp["Location"] == "/" and c.session["project_id"] == second.pk
    assert c.post("/project/switch/", {"project": "nope"}).status_code == 302
    assert c.session["project_id"] == second.pk
    assert c.get("/project/switch/").status_code == 405
    page = c.get("/").content.decode()
    assert str(foreign) not in page and str(project) in page  # only my projects are offered
    vm.refresh_from_db()
    assert vm.state == S.HOLD


def test_the_operators_dashboard_is_built_from_aggregates(admin_user: Any, make_sim_host: Any) -> None:
    """Capacity per cluster summed by the database and each cluster's most allocated hosts: the
    same queries at 3 hosts and at 40 (issue 13)."""
    from tests.conftest import page_queries

    c = browser(admin_user)
    for i in range(3):
        make_sim_host(f"d{i:02d}", vcpu=8)
    few, page = page_queries(c, "/")
    assert "3/3" in page or ">3<" in page
    for i in range(3, 40):
        make_sim_host(f"d{i:02d}", vcpu=8)
    many, page = page_queries(c, "/")
    assert many == few
    assert "5 most allocated of 40" in page
    assert "0 / 320" in page  # the cluster's vCPU: none allocated of 40 × 8
