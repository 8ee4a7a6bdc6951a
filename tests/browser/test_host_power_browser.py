"""In Chromium: an operator sets a host's Redfish BMC, puts the host into maintenance, confirms
the power-off dialog, and sees the power state change without reloading; the BMC is the real
sushy-tools emulator over a QEMU domain (tests/compute/bmc.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compute.models import Host
from tests.compute import bmc as emu
from tests.conftest import wait_for

from .conftest import ARTIFACTS
from .test_vm_lifecycle_browser import log_in, wait_live

pytestmark = pytest.mark.browser


def test_operator_powers_a_host_off_from_its_page(
    browser_page: Any, live_server_url: str, agent: Any, admin_user: Any, make_sim_host: Any, tmp_path: Path
) -> None:
    page, base = browser_page, live_server_url
    host = make_sim_host("br-a")
    with emu.bmc_domain() as domain, emu.redfish_emulator(domain, tmp_path) as address:
        log_in(page, base, admin_user.username)
        page.goto(f"{base}/compute/hosts/{host.pk}/")
        wait_live(page, "host-power")
        page.click(f"#host-{host.pk}-bmc summary")
        page.select_option(f"#bmc-driver-{host.pk}", "redfish")
        page.fill(f"#bmc-address-{host.pk}", address)
        page.fill(f"#bmc-user-{host.pk}", emu.USER)
        page.fill(f"#bmc-password-{host.pk}", emu.PASSWORD)
        page.click(f"#host-{host.pk}-bmc button[type=submit]")
        page.wait_for_selector("#messages li.success")
        assert emu.PASSWORD not in page.content()

        page.click(f"button[aria-label='Power on {host.name}']")
        wait_for(lambda: Host.objects.get(pk=host.pk).power_state == "on")
        page.wait_for_selector(f"#host-{host.pk}-panel [data-testid=host-power]:text-is('on')")
        assert domain.active()
        # no power off for a serving host: the page says why
        assert page.locator(f"button[aria-label='Power off {host.name}']").count() == 0

        page.click(f"button[aria-label='Maintenance {host.name}']")
        page.wait_for_selector(f"#host-{host.pk}-panel [data-testid=host-state]:text-is('MAINTENANCE')")
        page.click(f"button[aria-label='Power off {host.name}']")  # asks first, in the portal's dialog
        assert "off now" in page.locator("#confirm-dialog[open]").inner_text()
        page.click("#confirm-ok")
        page.wait_for_selector(f"#host-{host.pk}-panel [data-testid=host-power]:text-is('off')")
        assert not domain.active()
        page.screenshot(path=str(ARTIFACTS / "host-power-off.png"), full_page=True)
