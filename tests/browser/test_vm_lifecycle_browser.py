"""In Chromium: log in, create a VM, watch it go PENDING → RUNNING without reloading, power it off.

The live server is daphne on the test database; the Celery agent is a real worker in this
process; hosts are simulated (libvirt's test driver). Screenshots go to artifacts/screenshots/
(ignored by git). The README's picture is made by `make screenshots` (scripts/screenshots.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from compute.tasks import schedule_pending
from tests.conftest import wait_for

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser
PASSWORD = "pw-123456789"  # tests.factories.UserFactory's


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def wait_live(page: Any, name: str) -> None:
    """Wait for the websocket; on failure keep a screenshot and the console."""
    try:
        page.wait_for_selector("#live-indicator.on", timeout=15_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{name}-ws-failed.png"), full_page=True)
        raise AssertionError(page.url + "\n" + "\n".join(page.nephele_logs)) from None


def test_create_watch_live_and_power_off(
    browser_page: Any, live_server_url: str, agent: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    page, base = browser_page, live_server_url
    log_in(page, base, "member")
    page.screenshot(path=str(ARTIFACTS / "00-dashboard-empty.png"))

    # create a VM from the form (no host yet, so it will wait)
    page.click("nav[aria-label=Main] >> text=Virtual machines")
    page.click("a[data-open=create-vm]")
    page.select_option("#id_template", str(template.pk))  # step 1: the source
    page.click("#create-vm button:has-text('Next: capacity')")
    page.click("#create-vm button:has-text('Next: configuration')")
    page.fill("#id_name", "web-1")  # step 3: the name
    page.screenshot(path=str(ARTIFACTS / "01-create-form.png"))
    page.click("#create-vm button[type=submit]")
    page.wait_for_selector("#messages li.success")
    vm = VirtualMachine.objects.get(name="web-1")
    row = page.locator(f"#vm-{vm.pk}")
    assert row.get_attribute("data-state") == S.PENDING

    wait_live(page, "list")
    page.evaluate("window.__noReload = 'still here'")
    # the scheduler finds no host: the row says why, pushed over the websocket
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).schedule_message)
    row.locator(".why").wait_for()
    page.screenshot(path=str(ARTIFACTS / "02-pending.png"))

    # capacity appears: the scheduler places the VM and the row turns RUNNING without a reload
    make_sim_host("sim-a")
    schedule_pending()
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="RUNNING"]', timeout=30_000)
    assert page.evaluate("window.__noReload") == "still here"
    assert row.locator("button[aria-label='Power off web-1']").is_visible()
    page.screenshot(path=str(ARTIFACTS / "03-running.png"))

    # open it and power it off: the panel follows PENDING → … → POWEROFF, again without a reload
    row.locator("a.name").click()
    page.wait_for_url(f"{base}/compute/vms/{vm.pk}/")
    wait_live(page, "detail")
    page.evaluate("window.__noReload = 'detail'")
    page.click("button[aria-label='Power off web-1']")
    page.wait_for_selector("[data-testid=vm-state]:text-is('POWEROFF')", timeout=30_000)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.POWEROFF
    # the state log refreshes itself after the push, and the resize form appears (allowed now)
    page.click("#tab-log")
    page.locator(f"#vm-{vm.pk}-log .timeline li").first.locator(".state:text-is('POWEROFF')").wait_for()
    page.click("#tab-capacity")
    page.locator("#resize").wait_for()
    assert page.evaluate("window.__noReload") == "detail"
    page.screenshot(path=str(ARTIFACTS / "04-poweroff.png"), full_page=True)

    # an illegal request is refused with the service's message, in place
    page.fill(f"#rs-vcpu-{vm.pk}", "200")  # more than the host has
    page.click("#resize button[type=submit]")
    page.wait_for_selector("#messages li.error")
    assert "vcpu" in page.inner_text("#messages").lower()
    assert VirtualMachine.objects.get(pk=vm.pk).vcpu == template.vcpu


def test_rows_poll_while_the_websocket_is_down(
    browser_page: Any, live_server_url: str, agent: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    """The fallback: with no websocket, a row in flux re-reads itself (hx-get every 10 s)."""
    page, base = browser_page, live_server_url
    page.route_web_socket("**/ws/live/", lambda ws: ws.close(code=1000, reason="blocked by the test"))
    (vm,) = services.create_vms(member, project=project, template=template, name="offline-1")
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).schedule_message)  # no host yet
    log_in(page, base, "member")
    page.goto(f"{base}/compute/vms/")
    page.evaluate("window.__noReload = 'polling'")
    assert page.locator("#live-indicator").inner_text() == "Offline"
    make_sim_host("sim-a")
    schedule_pending()
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING)
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="RUNNING"]', timeout=30_000)
    assert page.evaluate("window.__noReload") == "polling"
    assert not page.locator("#live-indicator.on").count()


def test_a_reconnect_catches_up_with_missed_pushes(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    """Pushes lost while the socket was down are made good when it comes back (one re-read)."""
    page, base = browser_page, live_server_url
    link: dict[str, Any] = {"forward": True, "armed": False, "opened": 0}

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        if link["armed"]:
            link["opened"] += 1
        if link["armed"] and "page_side" not in link:  # this page's first socket: the test filters it
            link["page_side"] = ws
            server.on_message(lambda message: ws.send(message) if link["forward"] else None)

    page.route_web_socket("**/ws/live/", route)
    (vm,) = services.create_vms(member, project=project, template=template, name="gap-1", hold=True)
    log_in(page, base, "member")
    link["armed"] = True
    page.goto(f"{base}/compute/vms/")
    wait_live(page, "gap")
    page.evaluate("window.__noReload = 'gap'")
    link["forward"] = False  # the network drops what the server pushes…
    services.perform_action(member, vm.pk, services.ActionRequest(action="release"))
    page.wait_for_timeout(1500)
    assert page.locator(f"#vm-{vm.pk}").get_attribute("data-state") == S.HOLD
    link["page_side"].close(code=1012, reason="server restart")  # …then the socket drops; htmx reconnects
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="PENDING"]', timeout=15_000)
    assert link["opened"] >= 2 and page.evaluate("window.__noReload") == "gap"
