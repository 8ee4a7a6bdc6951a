"""In Chromium: log in, create a VM, watch it go PENDING → RUNNING without reloading, power it off."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from django.conf import settings

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from compute.tasks import schedule_pending
from tests.conftest import wait_for

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_create_watch_live_and_power_off(
    browser_page: Any, live_server_url: str, agent: Any, member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    page = browser_page
    page.goto(f"{live_server_url}/login/")
    page.fill("#id_username", "member")
    page.fill("#id_password", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server_url}/")

    page.goto(f"{live_server_url}/compute/vms/")
    page.fill("#id_name", "web-1")
    page.select_option("#id_template", str(template.pk))
    page.click("#create-vm button[type=submit]")
    page.wait_for_load_state()
    if not VirtualMachine.objects.filter(name="web-1").exists():
        page.screenshot(path=str(ARTIFACTS / "create-failed.png"), full_page=True)
        raise AssertionError(page.content()[:3000])
    vm = VirtualMachine.objects.get(name="web-1")
    row = page.locator(f"#vm-{vm.pk}")
    # no host yet: it waits, and says why
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).schedule_message)
    try:
        page.wait_for_selector("#live-indicator.on", timeout=15_000)  # the websocket is connected
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ws-failed.png"), full_page=True)
        raise AssertionError(page.url + "\n" + "\n".join(page.nephele_logs) + page.content()[-1500:]) from None
    page.evaluate("window.__noReload = 'still here'")
    row.locator("text=PENDING").wait_for()
    page.screenshot(path=str(ARTIFACTS / "01-pending.png"))

    # capacity appears: the scheduler places the VM and the row turns RUNNING, pushed over the websocket
    make_sim_host("sim-a")
    schedule_pending()
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="RUNNING"]')
    assert page.evaluate("window.__noReload") == "still here"
    page.screenshot(path=str(ARTIFACTS / "02-running.png"))

    # power it off from the VM page
    page.click(f"#vm-{vm.pk} a")
    page.wait_for_url(f"{live_server_url}/compute/vms/{vm.pk}/")
    page.wait_for_selector("#live-indicator.on")
    page.click("button[aria-label='Power off web-1']")
    page.wait_for_selector("[data-testid=vm-state]:text('POWEROFF')")
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.POWEROFF
    page.screenshot(path=str(ARTIFACTS / "03-poweroff.png"), full_page=True)


def test_vm_list_screenshot_for_the_readme(
    browser_page: Any, live_server_url: str, agent: Any, member: Any, project: Any, template: Any, make_sim_host: Any,
    admin_user: Any,
) -> None:  # fmt: skip
    """A VM list with VMs in several states (also docs/screenshots/vm-list.png)."""
    from tests.compute.helpers import act

    make_sim_host("sim-a", vcpu=8)
    make_sim_host("sim-b", vcpu=8, labels={"ssd": "yes"})
    vms = services.create_vms(member, project=project, template=template, name="web", count=4)
    services.create_vms(member, project=project, template=template, name="db-primary", hold=True)
    wait_for(lambda: VirtualMachine.objects.filter(state=S.RUNNING).count() == 4)
    act(member, vms[1], "poweroff")
    act(member, vms[2], "suspend")
    services.create_vms(member, project=project, template=template, name="analytics", vcpu=32)
    wait_for(lambda: VirtualMachine.objects.filter(state__in=[S.POWEROFF, S.SUSPENDED]).count() == 2)
    wait_for(lambda: VirtualMachine.objects.filter(name="analytics").exclude(schedule_message="").exists())
    admin_user.set_password("pw-123456789")
    admin_user.save()
    page = browser_page
    page.goto(f"{live_server_url}/login/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "pw-123456789")
    page.click("button[type=submit]")
    page.goto(f"{live_server_url}/compute/vms/?all=1")
    page.wait_for_selector("#live-indicator.on")
    page.screenshot(path=str(ARTIFACTS / "vm-list.png"))
    docs = settings.BASE_DIR / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTIFACTS / "vm-list.png", docs / "vm-list.png")
    page.goto(f"{live_server_url}/")
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.goto(f"{live_server_url}/compute/hosts/")
    page.screenshot(path=str(ARTIFACTS / "hosts.png"), full_page=True)
