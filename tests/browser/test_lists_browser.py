"""In Chromium: the list pages sort and page on the server, a row's menu of further actions is
fetched when it opens (htmx, under the CSP), the "New network" button opens its form, and the
network topology is drawn as wide as its card (issues 13 and 14)."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from tests.factories import VMTemplateFactory

from .test_vm_lifecycle_browser import log_in

pytestmark = pytest.mark.browser


def _names(page: Any) -> list[str]:
    return page.locator("#vm-rows a.name").all_inner_texts()  # type: ignore[no-any-return]


def test_sorting_paging_and_a_row_menu_fetched_on_open(
    browser_page: Any, live_server_url: str, member: Any, project: Any
) -> None:
    page, base = browser_page, live_server_url
    tpl = VMTemplateFactory(project=project)
    for name in ("charlie", "alpha", "bravo"):
        services.create_vms(member, project=project, template=tpl, name=name, hold=True)
    log_in(page, base, member.username)
    page.goto(f"{base}/compute/vms/")
    assert _names(page) == ["bravo", "alpha", "charlie"]  # newest first
    page.click("th >> a.sort:has-text('Name')")
    page.wait_for_url("**sort=name**")
    assert _names(page) == ["alpha", "bravo", "charlie"]
    page.click("th >> a.sort:has-text('Name')")  # again: the other way
    page.wait_for_url("**sort=-name**")
    assert _names(page) == ["charlie", "bravo", "alpha"]
    page.goto(f"{base}/compute/vms/?per_page=25&sort=name")
    assert page.locator("nav.pager .count").inner_text() == "1–3 of 3"

    row = page.locator("#vm-rows tr", has_text="alpha")
    assert row.locator("button:has-text('Terminate')").count() == 0  # not in the page: fetched on open
    row.locator("summary[aria-label='More actions for alpha']").click()
    terminate = row.locator(".menu button:has-text('Terminate')")
    terminate.wait_for(timeout=10_000)
    assert terminate.is_visible()


def test_new_network_opens_its_form_and_the_topology_fills_its_card(
    browser_page: Any, live_server_url: str, project_admin: Any, project: Any
) -> None:
    page, base = browser_page, live_server_url
    log_in(page, base, project_admin.username)
    page.goto(f"{base}/network/")
    assert page.locator("details#new-network").get_attribute("open") is None
    page.click("a:has-text('New network')")
    page.wait_for_function("document.getElementById('new-network').open")
    page.goto(f"{base}/network/topology/")
    box = page.locator("svg.topology").bounding_box()
    assert box is not None and box["width"] > 300, box  # not an 18 px icon
