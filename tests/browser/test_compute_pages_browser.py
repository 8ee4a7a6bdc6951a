"""In Chromium: the VM page's tabs (keyboard, deep links, lazy tabs), templates edited and
deleted from their list (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from compute.models import VMTemplate

from .test_vm_lifecycle_browser import log_in

pytestmark = pytest.mark.browser


def _logs(page: Any) -> str:
    return "\n".join(page.nephele_logs)


def test_vm_tabs_by_keyboard_lazy_and_deep_linked(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    page, base = browser_page, live_server_url
    (vm,) = services.create_vms(member, project=project, template=template, name="tabby", hold=True)
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/vms/{vm.pk}/")
    assert page.locator("#panel-info").is_visible() and page.locator("#panel-log").is_hidden()
    # arrow keys move between tabs and show their panel; the address remembers the tab
    page.focus("#tab-info")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-capacity", _logs(page)
    assert page.locator("#panel-capacity").is_visible() and page.locator("#panel-info").is_hidden()
    assert page.get_attribute("#tab-capacity", "aria-selected") == "true"
    assert page.get_attribute("#tab-info", "tabindex") == "-1"
    assert "tab=capacity" in page.url
    # End: the last tab (monitoring), fetched when shown
    page.keyboard.press("End")
    page.locator(f"#vm-{vm.pk}-monitoring[data-loaded] #vm-charts").wait_for()
    page.locator("#vm-charts[data-loaded]").wait_for()  # charts.js found the late box
    # Left: the log, fetched when shown
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.id") == "tab-log"
    page.locator(f"#vm-{vm.pk}-log .timeline li .state:text-is('HOLD')").wait_for()
    # a reload keeps the tab (the address has ?tab=log)
    page.reload()
    assert page.locator("#panel-log").is_visible() and page.locator("#panel-info").is_hidden()
    # a hash naming something inside a tab opens that tab (the row menu's "Resize…")
    page.goto(f"{base}/compute/vms/{vm.pk}/#resize")
    page.locator("#resize").wait_for()
    assert page.locator("#panel-capacity").is_visible()
    page.goto(f"{base}/compute/vms/{vm.pk}/#placement")
    assert page.locator("#panel-placement").is_visible()
    # a click works as well
    page.click("#tab-storage")
    assert page.locator("#panel-storage").is_visible() and page.locator("#panel-placement").is_hidden()


def test_template_edited_and_deleted_from_its_list(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    page, base = browser_page, live_server_url
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/templates/")
    page.click(f"a[aria-label='Edit {template.name}']")
    page.wait_for_url(f"**/compute/templates/{template.pk}/edit/")
    page.fill("#id_name", "bigger")
    page.fill("#id_vcpu", "4")
    page.click("button:has-text('Save template')")
    page.wait_for_url(f"{base}/compute/templates/")
    assert "Template bigger saved." in page.inner_text("#messages")
    assert VMTemplate.objects.get(pk=template.pk).vcpu == 4
    # its disks are one click away
    assert page.get_attribute("a[aria-label='Disks of bigger']", "href") == f"/storage/templates/{template.pk}/disks/"
    # delete asks first: dismissed, nothing happens; accepted, it is gone
    page.click("button[aria-label='Delete bigger']")
    page.locator("#confirm-dialog[open]").wait_for()
    page.click("#confirm-cancel")
    assert VMTemplate.objects.filter(pk=template.pk).exists()
    page.click("button[aria-label='Delete bigger']")
    page.click("#confirm-ok")
    page.wait_for_selector("#messages li.success")
    assert "Template bigger deleted." in page.inner_text("#messages")
    assert not VMTemplate.objects.filter(pk=template.pk).exists()


def test_vm_list_bulk_actions_columns_and_live_chips(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    from compute.models import VirtualMachine
    from compute.states import VMState as S

    page, base = browser_page, live_server_url
    a, b, c = services.create_vms(member, project=project, template=template, name="bulk", count=3, hold=True)
    services.perform_action(member, c.pk, services.ActionRequest(action="release"))  # c: PENDING
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/vms/")
    assert page.inner_text("[data-testid=chip-stopped]") == "2"
    # nothing selected: the bar says so and posts nothing
    page.click("#vm-bulk button[value=release]")
    assert "Select at least one VM" in page.inner_text("[data-bulk-count]")
    # select all, then release: one result per VM, the PENDING one refused (409)
    page.check("[data-select-all=vm-bulk]")
    assert page.inner_text("[data-bulk-count]") == "3 selected:"
    page.click("#vm-bulk button[value=release]")
    page.locator("#bulk-outcome").wait_for()
    assert "2 of 3 requested" in page.inner_text("#bulk-outcome"), _logs(page)
    assert page.locator("#bulk-outcome tr[data-status='409']").inner_text().startswith("bulk-2")
    # the rows were swapped in place and the state chips re-read their counts
    page.wait_for_selector(f'#vm-{a.pk}[data-state="PENDING"]')
    page.locator("[data-testid=chip-stopped]:text-is('0')").wait_for()
    assert page.inner_text("[data-testid=chip-busy]") == "3"
    # terminate asks first: dismissed, nothing is posted
    page.check(f"input.row-select[value='{a.pk}']")
    page.click("#vm-bulk button[value=terminate]")
    assert "This cannot be undone" in page.locator("#confirm-dialog[open]").inner_text()
    page.click("#confirm-cancel")
    assert VirtualMachine.objects.get(pk=a.pk).state != S.DONE
    page.click("#vm-bulk button[value=terminate]")
    page.click("#confirm-ok")
    page.locator("#bulk-outcome:has-text('Terminate')").wait_for()
    assert "requested" in page.inner_text("#bulk-outcome")
    # the column chooser: hide the owner column, kept after a reload
    assert page.locator("th.c-owner").is_visible()
    page.click("#vms-columns summary")
    page.uncheck("#vms-columns input[value=owner]")
    page.click("#vms-columns button:has-text('Apply')")
    page.wait_for_url("**columns=1**")
    assert page.locator("th.c-owner").is_hidden() and page.locator("th.c-ip").is_visible()
    page.goto(f"{base}/compute/vms/")
    assert page.locator("th.c-owner").is_hidden()
    assert page.locator(f"#vm-{b.pk} td.c-owner").is_hidden()


def test_create_vm_step_by_step_with_the_quota_it_would_use(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    from compute.models import VirtualMachine
    from tenants.quotas import set_limit

    page, base = browser_page, live_server_url
    set_limit(project, "vcpu", 5)
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/vms/?create=1")
    # one step at a time: the source first
    assert page.locator("#step-source").is_visible() and page.locator("#step-capacity").is_hidden()
    page.click("button:has-text('Next: capacity')")
    assert page.locator("#step-capacity").is_visible() and page.locator("#step-source").is_hidden()
    assert page.get_attribute("[data-step-link=capacity]", "aria-current") == "step"
    # the quota projection follows the count, before anything is submitted
    assert "0 + 2 / 5" in page.inner_text("[data-testid=after-vcpu]")
    page.fill("#id_count", "3")
    page.locator("[data-testid=quota-over]").wait_for()
    assert "0 + 6 / 5" in page.inner_text("[data-testid=after-vcpu]")
    page.fill("#id_count", "2")
    page.locator("[data-testid=after-vcpu]:has-text('0 + 4 / 5')").wait_for()
    assert page.locator("[data-testid=quota-over]").count() == 0
    page.click("button:has-text('Next: configuration')")
    page.fill("#id_name", "stepped")
    page.click("button:has-text('Next: review')")
    page.click("aside.create-side button[type=submit]")
    page.wait_for_url(f"{base}/compute/vms/")
    assert VirtualMachine.objects.filter(name__startswith="stepped-").count() == 2, _logs(page)


def test_create_vm_from_an_image_without_a_template(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    from compute.models import VirtualMachine
    from tests.images.factories import ready_image

    page, base = browser_page, live_server_url
    img = ready_image(member, project, "my-os")
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/vms/?create=1")
    assert page.locator("#id_template").is_visible() and page.locator("#id_image").is_hidden()
    page.check("input[name=source][value=image]")
    assert page.locator("#id_image").is_visible() and page.locator("#id_template").is_hidden()
    page.select_option("#id_image", str(img.pk))
    page.fill("#id_disk_gb", "3")
    page.click("button:has-text('Next: capacity')")
    page.fill("#id_vcpu", "1")
    page.fill("#id_memory_mb", "256")
    page.locator("[data-testid=after-system_disk_gb]:has-text('0 + 3 /')").wait_for()
    page.click("button:has-text('Next: configuration')")
    page.fill("#id_name", "from-image")
    page.check("#id_hold")
    page.click("aside.create-side button[type=submit]")
    page.wait_for_url(f"{base}/compute/vms/")
    vm = VirtualMachine.objects.get(name="from-image")
    assert vm.template_id is None and vm.disk_gb == 3, _logs(page)
