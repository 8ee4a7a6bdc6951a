"""The host pages' power and maintenance parts, through the Django test client: the list's power
column, the detail's buttons (destructive ones ask first), refusals shown where the button was,
the BMC form (the password never shown), and a drain started from the page."""

from __future__ import annotations

from typing import Any

from django.test import Client

from compute import services
from compute.models import Host, VirtualMachine
from tests.compute.helpers import settle


def _client(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_host_list_shows_the_power_state(make_sim_host: Any, admin_user: Any) -> None:
    a, b = make_sim_host("pv-a"), make_sim_host("pv-b")
    services.power.configure_bmc(admin_user, a.pk, power_driver="redfish", bmc_address="http://127.0.0.1:9")
    Host.objects.filter(pk=a.pk).update(power_state="off")  # as a BMC answer would leave it
    page = _client(admin_user).get("/compute/hosts/").content.decode()
    assert ">Power<" in page
    row_a = page[page.index(f'id="host-{a.pk}"') :].split("</tr>")[0]
    row_b = page[page.index(f'id="host-{b.pk}"') :].split("</tr>")[0]
    assert 'data-testid="host-power">off<' in row_a
    assert 'data-testid="host-power">no BMC<' in row_b


def test_detail_buttons_follow_the_host_state_and_destructive_ones_ask(make_sim_host: Any, admin_user: Any) -> None:
    a = make_sim_host("pv-c")
    services.power.configure_bmc(admin_user, a.pk, power_driver="ipmi", bmc_address="127.0.0.1:6230")
    page = _client(admin_user).get(f"/compute/hosts/{a.pk}/").content.decode()
    assert 'value="power_on"' in page and 'value="power_status"' in page
    assert 'value="power_off"' not in page  # a serving host offers no power off
    assert 'value="maintenance"' in page and 'value="activate"' not in page
    services.power.enter_maintenance(admin_user, a.pk)
    page = _client(admin_user).get(f"/compute/hosts/{a.pk}/").content.decode()
    assert 'value="power_off"' in page and 'hx-confirm="Power pv-c off now' in page
    assert 'value="power_reset"' in page and 'hx-confirm="Reset pv-c' in page
    assert 'value="activate"' in page


def test_a_refused_power_action_is_shown_where_it_was_started(make_sim_host: Any, admin_user: Any) -> None:
    a = make_sim_host("pv-d")
    answer = _client(admin_user).post(f"/compute/hosts/{a.pk}/action/", {"action": "power_on"}, HTTP_HX_REQUEST="true")
    body = answer.content.decode()
    assert answer.status_code == 200
    assert "no BMC configured" in body and 'role="alert"' in body
    assert Host.objects.get(pk=a.pk).power_seq == 0


def test_bmc_form_saves_and_never_shows_the_password(make_sim_host: Any, admin_user: Any) -> None:
    a = make_sim_host("pv-e")
    c = _client(admin_user)
    saved = c.post(f"/compute/hosts/{a.pk}/bmc/", {"power_driver": "redfish", "bmc_address": "https://bmc.example",
                                           "bmc_username": "root", "bmc_password": "hunter2-bmc",
                                           "bmc_verify_tls": "on"}, follow=True)  # fmt: skip
    assert "BMC settings saved" in saved.content.decode()
    host = Host.objects.get(pk=a.pk)
    assert host.power_driver == "redfish" and host.bmc_password and "hunter2" not in host.bmc_password
    assert services.power.unseal(host.bmc_password) == "hunter2-bmc"
    page = c.get(f"/compute/hosts/{a.pk}/").content.decode()
    assert "hunter2" not in page and "stored; empty keeps it" in page
    assert f'action="/compute/hosts/{a.pk}/bmc/"' in page  # the page's form posts to the page's view
    # an empty password keeps the stored one; a bad address is refused and named
    c.post(f"/compute/hosts/{a.pk}/bmc/", {"power_driver": "redfish", "bmc_address": "https://bmc2.example"})
    assert services.power.unseal(Host.objects.get(pk=a.pk).bmc_password) == "hunter2-bmc"
    bad = c.post(f"/compute/hosts/{a.pk}/bmc/", {"power_driver": "redfish", "bmc_address": "bmc"}, follow=True)
    assert "bmc_address" in bad.content.decode()
    assert Host.objects.get(pk=a.pk).bmc_address == "https://bmc2.example"


def test_drain_from_the_page_lists_and_moves_the_vms(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    a = make_sim_host("pv-f", priority=10)
    (vm,) = services.create_vms(member, project=project, template=template, name="mover", count=1)
    settle()
    make_sim_host("pv-g")
    c = _client(admin_user)
    page = c.get(f"/compute/hosts/{a.pk}/").content.decode()
    assert 'data-testid="resident-vms"' in page and "mover" in page
    assert 'hx-confirm="Put pv-f into maintenance and migrate its 1 VM(s)' in page
    answer = c.post(f"/compute/hosts/{a.pk}/action/", {"action": "drain"}, HTTP_HX_REQUEST="true")
    assert "draining: 1 VM(s) migrating" in answer.content.decode()
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).host_id != a.pk
    page = c.get(f"/compute/hosts/{a.pk}/").content.decode()
    assert "0 VM(s) still on this host." in page


def test_host_power_pages_are_not_for_members(make_sim_host: Any, member: Any) -> None:
    a = make_sim_host("pv-h")
    c = _client(member)
    assert c.post(f"/compute/hosts/{a.pk}/action/", {"action": "power_on"}).status_code == 404
    assert (
        c.post(f"/compute/hosts/{a.pk}/bmc/", {"power_driver": "ipmi", "bmc_address": "127.0.0.1"}).status_code == 404
    )
    assert Host.objects.get(pk=a.pk).power_driver == "none"
