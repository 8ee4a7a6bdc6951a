"""In Chromium: the upload page slices a file into chunks, shows the progress bar and lands on
the READY image's page (daphne live server on the test database, Debian's Chromium)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from images.models import Image, ImageState
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_vm_lifecycle_browser import log_in

from .helpers import make_image

pytestmark = pytest.mark.browser


def test_upload_page_sends_chunks_and_shows_the_ready_image(
    browser_page: Any, live_server_url: str, member: Any, project: Any, datastore: Any, tmp_path: Any
) -> None:
    page, base = browser_page, live_server_url
    src = make_image(tmp_path / "disk.qcow2", "qcow2", "64M")
    with open(src, "r+b") as f:  # make the file span several 8 MiB slices
        f.seek(0, 2)
        f.write(b"\x5a" * (20 << 20))
    qemu_fix = tmp_path / "disk2.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(qemu_fix)], check=True)
    puts: list[str] = []
    page.on("request", lambda req: puts.append(req.headers.get("content-range", "")) if req.method == "PUT" else None)
    log_in(page, base, "member")
    page.click("nav[aria-label=Main] >> text=Images")
    page.click("text=Upload image")
    page.set_input_files("#up-file", str(qemu_fix))
    page.fill("#up-name", "browser-disk")
    page.click("#up-start")
    page.wait_for_url(re.compile(r"/images/\d+/$"), timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "images-uploaded.png"), full_page=True)
    img = Image.objects.get(name="browser-disk")
    assert img.state == ImageState.READY and img.format == "qcow2", page.nephele_logs
    assert len(puts) == -(-qemu_fix.stat().st_size // (8 << 20)) >= 2, puts  # one PUT per 8 MiB slice
    assert page.locator("[data-testid=image-state]").first.inner_text() == "Ready"
    page.click("nav[aria-label=Main] >> text=Images")
    page.wait_for_selector(f"#image-{img.pk}")
    page.screenshot(path=str(ARTIFACTS / "images-list.png"), full_page=True)
