"""In Chromium, the portal as a new user found it (issue 14): a failed action shows where it was
started (a toast and the row's badge, pushed live), destructive actions ask first in one dialog
(typing the name for the irreversible ones), and the main pages log no htmx errors."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S
from tenants.models import Project
from tests.compute.helpers import drive_to
from tests.conftest import wait_for

from .test_vm_lifecycle_browser import log_in, wait_live

pytestmark = pytest.mark.browser

# The agent's report when a guest ignores the ACPI power button (compute/agent.py). libvirt's
# test driver powers a domain off at once on shutdown, so no guest here can ignore it: the
# test plays the host agent and reports the timeout through the service the agent calls.
ACPI_TIMEOUT = "ACPI shutdown did not complete within 5 s; the VM keeps running"


def test_a_failed_terminate_shows_a_toast_and_a_badge_in_its_row(
    browser_page: Any,
    live_server_url: str,
    member: Any,
    admin_user: Any,
    project: Any,
    template: Any,
    make_sim_host: Any,
) -> None:
    page, base = browser_page, live_server_url
    make_sim_host("sim-a")
    vm = drive_to(S.RUNNING, user=member, admin=admin_user, project=project, template=template)
    log_in(page, base, "member")
    page.goto(f"{base}/compute/vms/")
    wait_live(page, "failed-terminate")
    page.evaluate("window.__noReload = 'here'")
    row = page.locator(f"#vm-{vm.pk}")
    assert row.locator(".sub.failed").count() == 0

    def open_terminate() -> None:
        row.locator(f"summary[aria-label='More actions for {vm.name}']").click()
        row.locator(".menu button:has-text('Terminate')").click()

    # the dialog names the VM and the consequence; Cancel sends nothing
    open_terminate()
    dialog = page.locator("#confirm-dialog")
    try:
        dialog.wait_for(state="visible", timeout=5000)
    except Exception:
        raise AssertionError("\n".join(page.nephele_logs)) from None
    assert f"Terminate {vm.name}?" in dialog.inner_text() and "disks are deleted" in dialog.inner_text()
    page.click("#confirm-cancel")
    dialog.wait_for(state="hidden")
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING

    open_terminate()
    dialog.wait_for(state="visible")
    page.click("#confirm-ok")
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="{S.SHUTDOWN}"]')
    vm.refresh_from_db()
    assert vm.operation == "terminate"

    # the guest ignores the power button: the agent reports the timeout, the VM stays RUNNING
    services.complete_step(vm.pk, vm.operation_seq, services.StepResult(ok=False, error=ACPI_TIMEOUT), step=S.SHUTDOWN)
    page.wait_for_selector(f'#vm-{vm.pk}[data-state="{S.RUNNING}"][data-failed]')
    badge = row.locator(".sub.failed")
    assert "Terminate failed" in badge.inner_text() and "ACPI shutdown did not complete" in badge.get_attribute("title")
    toast = page.locator("#messages li.error", has_text=f"{vm.name}: Terminate failed")
    toast.wait_for()
    assert "the VM keeps running" in toast.inner_text()
    assert page.evaluate("window.__noReload") == "here"

    # the next action clears the badge (it is about the last action only), and raises no second toast
    services.perform_action(member, vm.pk, services.ActionRequest(action="poweroff"))
    page.wait_for_selector(f'#vm-{vm.pk}:not([data-failed])[data-state="{S.SHUTDOWN}"]')
    assert page.locator("#messages li.error", has_text="Terminate failed").count() == 1

    # started from the VM's own page, a failure toasts there too (its panel carries the reason)
    page.goto(f"{base}/compute/vms/{vm.pk}/")
    wait_live(page, "failed-detail")
    assert page.locator("#messages li.error").count() == 0
    vm.refresh_from_db()
    services.complete_step(vm.pk, vm.operation_seq, services.StepResult(ok=False, error=ACPI_TIMEOUT), step=S.SHUTDOWN)
    page.locator("#messages li.error", has_text=f"{vm.name}: Power off failed").wait_for()
    assert "Power off failed" in page.locator(f"#vm-{vm.pk}-panel .alert.error").inner_text()


def test_deleting_a_project_asks_for_its_name(browser_page: Any, live_server_url: str, admin_user: Any) -> None:
    page, base = browser_page, live_server_url
    from tests.factories import ProjectFactory

    keep = ProjectFactory(name="keep")
    ProjectFactory(name="scratch", organization=keep.organization)
    log_in(page, base, admin_user.username)
    page.goto(f"{base}/identity/")
    page.click("button.pill-button:has-text('scratch')")  # the page's project links use the switcher
    page.wait_for_selector("h2:has-text('Members of') >> text=scratch")
    assert page.locator("#project-switch option:checked").inner_text().endswith("scratch")
    page.click("button:has-text('Delete project')")
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    ok = page.locator("#confirm-ok")
    assert "Delete project" in ok.inner_text() and ok.is_disabled()
    page.fill("#confirm-input", "scrat")
    assert ok.is_disabled()
    page.keyboard.press("Enter")  # refused while the name is wrong
    assert dialog.is_visible() and Project.objects.filter(name="scratch").exists()
    page.fill("#confirm-input", "scratch")
    ok.click()
    page.wait_for_selector("#messages li.success:has-text('Project deleted')")
    assert not Project.objects.filter(name="scratch").exists() and Project.objects.filter(name="keep").exists()


def test_main_pages_log_no_htmx_errors_when_pushes_arrive(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    """Every page hears every push of its project (a VM's row and panel, new events); a page that
    shows none of them must not log htmx:oobErrorNoTarget."""
    page, base = browser_page, live_server_url
    page.add_init_script(
        "document.addEventListener('htmx:wsAfterMessage', () => { window.__wsn = (window.__wsn || 0) + 1; });"
    )
    (vm,) = services.create_vms(member, project=project, template=template, name="pushy", hold=True)
    log_in(page, base, "member")
    pages = ["/", "/compute/vms/", f"/compute/vms/{vm.pk}/", "/images/", "/storage/volumes/", "/network/", "/events/"]
    pages += ["/account/", "/compute/templates/"]
    held = True
    for path in pages:
        page.goto(base + path)
        wait_live(page, "oob-" + path.strip("/").replace("/", "-"))
        before = page.evaluate("window.__wsn || 0")
        services.perform_action(member, vm.pk, services.ActionRequest(action="release" if held else "hold"))
        held = not held
        wait_for(lambda n=before + 2: page.evaluate("window.__wsn || 0") >= n)  # the row's frame and the panel's
        errors = [line for line in page.nephele_logs if "oobErrorNoTarget" in line or "htmx:" in line.lower()]
        assert not errors, (path, errors)

    # the charts' legends name what they show in people's words, not the metrics' codes
    page.goto(f"{base}/compute/vms/{vm.pk}/?tab=monitoring")  # the charts live in the Monitoring tab
    legend = page.locator("#vm-charts .u-legend").first
    legend.wait_for()
    labels = page.locator("#vm-charts .u-legend .u-label").all_text_contents()  # not CSS-uppercased
    assert {"Received", "Sent", "Read", "Written"} <= set(labels), labels
    assert not [x for x in labels if "_" in x or x.isupper()], labels


def _widest(page: Any) -> list[str]:
    """The outermost elements reaching past the window's right edge (for the failure message)."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => { const w = document.documentElement.clientWidth, out = [];
        document.querySelectorAll('body *').forEach((el) => {
          const r = el.getBoundingClientRect();
          if (r.right > w + 1 && !(el.parentElement && el.parentElement.getBoundingClientRect().right > w + 1))
            out.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right)); });
        return out.slice(0, 8); }"""
    )


def _overflow(page: Any) -> int:
    """How far the page is wider than the window (0: no horizontal scrolling)."""
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def test_on_a_phone_lists_scroll_in_their_card_and_a_menu_button_opens_the_nav(
    browser_page: Any, live_server_url: str, member: Any, project: Any, template: Any
) -> None:
    page, base = browser_page, live_server_url
    for i in range(3):
        services.create_vms(member, project=project, template=template, name=f"a-rather-long-vm-name-{i}", hold=True)
    from tenants import credentials

    credentials.add_ssh_key(
        member,
        name="laptop",
        public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvDAmcYNL3ht2uz0zIJ2om+PBjfx10nIzQ3CUHuvzYM alice@example",
    )
    log_in(page, base, "member")
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/compute/vms/", "/images/", "/storage/volumes/", "/network/", "/events/", "/account/"):
        page.goto(base + path)
        assert _overflow(page) <= 1, (path, _overflow(page), _widest(page))
    page.goto(f"{base}/compute/vms/")
    wrap = page.locator("#vm-rows").locator("xpath=ancestor::div[contains(@class,'table-wrap')][1]")
    assert wrap.evaluate("el => getComputedStyle(el).overflowX") == "auto"

    nav = page.locator("nav[aria-label=Main]")
    toggle = page.locator("button.nav-toggle")
    assert toggle.is_visible() and not nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    nav.locator("a:has-text('Volumes')").click()
    page.wait_for_url(f"{base}/storage/volumes/")
    assert not page.locator("nav[aria-label=Main]").is_visible()  # a new page starts with it closed

    page.set_viewport_size({"width": 1360, "height": 820})  # on a laptop the nav is always there
    assert page.locator("nav[aria-label=Main]").is_visible() and not page.locator("button.nav-toggle").is_visible()


def test_a_new_token_has_a_copy_button(browser_page: Any, live_server_url: str, member: Any) -> None:
    page, base = browser_page, live_server_url
    log_in(page, base, "member")
    page.goto(f"{base}/account/")
    page.fill("#tk-name", "laptop")
    page.click("button:has-text('Create token')")
    secret = page.locator("#new-token").inner_text()
    assert secret.startswith("nph_")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click("button.copy[data-copy='new-token']")
    page.locator("button.copy.copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
