"""In Chromium: a member opens the console of a real guest (libvirtd + QEMU under TCG, the tiny
guest of scripts/build-test-guest.sh, which prints a marker and runs a shell on ttyS0).

From the VM's page, its Console tab; the page shows the console log with the guest's marker;
the serial terminal (xterm.js over the console websocket) shows the guest's live output and runs
a typed command (the shell computes ``$((6*7))``, so the 42 is the guest's answer, not the
terminal's echo); the graphical tab (noVNC) connects and draws the guest's screen (a framebuffer
update).

The live server is daphne in a forked process, started before the Celery agent (in this
process), so the consoles are opened by the server's own libvirt connection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_console_real_host import boot_tiny_guest, terminate
from tests.integration.test_real_host import real_host_ready  # noqa: F401  (fixture)

from .conftest import ARTIFACTS
from .test_vm_lifecycle_browser import log_in

pytestmark = pytest.mark.browser

# bright pixels on the noVNC canvas: only a framebuffer update draws them (the guest writes
# its markers on its screen, scripts/build-test-guest.sh)
SCREEN_DRAWN = """() => {
  const c = document.querySelector('#vnc-screen canvas');
  if (!c || !c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let bright = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 300) bright++;
  return bright > 50;
}"""


def _terminal_shows(page: Any, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "t => (document.querySelector('#serial-terminal .xterm-rows') || {}).innerText?.includes(t)",
        arg=text,
        timeout=timeout,
    )


def test_serial_and_graphical_console_in_chromium(
    browser_page: Any,
    live_server_url: str,
    real_host_ready: None,  # noqa: F811
    agent: Any,
    admin_user: Any,
    member: Any,
    project: Any,
) -> None:
    page, base = browser_page, live_server_url
    vm = boot_tiny_guest(admin_user, member, project, graphics=True)
    try:
        log_in(page, base, "member")
        page.goto(f"{base}/compute/vms/{vm.pk}/")
        page.click("#tab-console")
        try:
            page.wait_for_url(f"{base}/compute/vms/{vm.pk}/console/", wait_until="domcontentloaded")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "console-page-failed.png"), full_page=True)
            raise AssertionError(page.url + "\n" + "\n".join(page.nephele_logs)) from None

        # what the guest printed at boot, marker included, is on the page
        assert f"NEPHELE-MARKER vm-{vm.pk}" in page.locator("pre.console-log").inner_text()

        try:
            page.wait_for_selector('#serial-terminal[data-state="connected"]', timeout=30_000)
            _terminal_shows(page, "NEPHELE-HEARTBEAT")  # the guest's live output
            page.locator("#serial-terminal").click()
            page.keyboard.press("Enter")
            _terminal_shows(page, "nephele# ")
            page.keyboard.type("echo NEPHELE-ECHO-$((6*7))")
            page.keyboard.press("Enter")
            _terminal_shows(page, "NEPHELE-ECHO-42")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "console-serial-failed.png"), full_page=True)
            raise AssertionError("\n".join(page.nephele_logs)) from None
        page.screenshot(path=str(ARTIFACTS / "console-serial.png"), full_page=True)

        try:
            page.click("#tab-vnc")
            page.wait_for_selector('#vnc-screen[data-state="connected"]', timeout=30_000)
            page.wait_for_selector("#vnc-screen canvas")
            page.wait_for_function(SCREEN_DRAWN, timeout=30_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "console-vnc-failed.png"), full_page=True)
            raise AssertionError("\n".join(page.nephele_logs)) from None
        page.screenshot(path=str(ARTIFACTS / "console-vnc.png"), full_page=True)
        assert not [line for line in page.nephele_logs if "Content Security Policy" in line or "pageerror" in line]
    finally:
        terminate(member, vm)
