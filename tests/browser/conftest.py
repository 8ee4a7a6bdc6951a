"""A live ASGI server (daphne, HTTP + websockets) on the test database, and headless Chromium.

The server is a forked process (channels' DaphneProcess), so it sees the test database the
fixtures commit to; the Celery agent runs in the test process and publishes over Redis.
Chromium is Debian's (/usr/bin/chromium) driven by Playwright; no browser is downloaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ARTIFACTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture
def live_server_url(transactional_db: Any) -> Iterator[str]:
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.db import connections

    connections.close_all()  # the child must open its own connections
    proc = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=ASGIStaticFilesHandler))
    proc.start()
    if not proc.ready.wait(timeout=30):
        proc.terminate()
        raise RuntimeError("daphne did not start")
    yield f"http://127.0.0.1:{proc.port.value}"
    proc.terminate()
    proc.join(10)


@pytest.fixture
def browser_page(live_server_url: str) -> Iterator[Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is needed for the browser tier: run `make test`")
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs a loop in this thread
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        page.set_default_timeout(30_000)
        logs: list[str] = []
        page.on("console", lambda msg: logs.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: logs.append(f"pageerror: {exc}"))
        page.nephele_logs = logs  # shown by the tests when something goes wrong
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
