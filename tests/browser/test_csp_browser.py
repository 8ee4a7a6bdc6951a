"""In Chromium, under the portal's Content-Security-Policy: the pages, their scripts, the live
websocket and the API docs work, and the browser reports no violation (it logs every refused
script, style, connection or frame to the console)."""

from __future__ import annotations

from typing import Any

import pytest

from compute import services
from tests.factories import VMTemplateFactory

from .test_vm_lifecycle_browser import log_in, wait_live

pytestmark = pytest.mark.browser


def _violations(page: Any) -> list[str]:
    return [line for line in page.nephele_logs if "Content Security Policy" in line]


def test_pages_run_under_the_policy_without_violations(
    browser_page: Any, live_server_url: str, member: Any, project: Any
) -> None:
    page, base = browser_page, live_server_url
    tpl = VMTemplateFactory(project=project)
    (vm,) = services.create_vms(member, project=project, template=tpl, name="csp-vm", hold=True)
    log_in(page, base, member.username)
    wait_live(page, "csp-dashboard")  # the websocket connected: connect-src allows the portal itself
    pages = [
        "/",
        "/compute/vms/",
        f"/compute/vms/{vm.pk}/",
        "/compute/templates/",
        "/images/",
        "/network/",
        "/api/v1/docs/",
    ]
    for path in pages:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status < 400, path
        assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
        page.wait_for_load_state("networkidle")
    page.wait_for_selector(".swagger-ui .info", timeout=20_000)  # Swagger UI started from its own file
    assert _violations(page) == [], "\n".join(page.nephele_logs)


def test_a_data_confirm_form_asks_before_it_posts(browser_page: Any, live_server_url: str, member: Any) -> None:
    """Inline ``onsubmit`` handlers are gone; ``data-confirm`` asks the same question (in the dialog)."""
    page, base = browser_page, live_server_url
    log_in(page, base, member.username)
    page.goto(f"{base}/")  # a real portal page with nephele.js under the policy
    page.evaluate(
        """() => { const f = document.createElement('form'); f.dataset.confirm = 'Really?';
        f.method = 'post'; f.action = '/nowhere'; f.innerHTML = '<button id=go>go</button>';
        document.body.appendChild(f); }"""
    )
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.message), d.dismiss()))  # no native dialog any more
    page.evaluate("() => document.getElementById('go').closest('form').requestSubmit()")
    dialog = page.locator("#confirm-dialog")  # the portal's one confirmation dialog asks instead
    dialog.wait_for(state="visible")
    assert "Really?" in dialog.inner_text() and asked == []
    page.click("#confirm-cancel")
    dialog.wait_for(state="hidden")
    assert page.url == f"{base}/"  # dismissed: nothing was posted
    assert _violations(page) == []
