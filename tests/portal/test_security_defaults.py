"""Safe defaults (issue: security hardening, "safe defaults"): DEBUG is a developer's opt-in,
every page carries a Content-Security-Policy that allows no inline script and no eval, the
browser-defence headers are set, and no template relies on inline scripts or handlers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def _directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _settings_debug(env: dict[str, str]) -> str:
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='portal.settings'; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    clean = {k: v for k, v in os.environ.items() if k != "NEPHELE_DEBUG"} | env
    return subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=clean, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def test_debug_is_off_unless_a_developer_asks() -> None:
    assert _settings_debug({}) == "False"
    assert _settings_debug({"NEPHELE_DEBUG": "1"}) == "True"


@pytest.mark.parametrize(
    "path", ["/login/", "/", "/vms/", "/api/v1/docs/", "/api/v1/schema/", "/api/v1/vms/", "/no-such-page/"]
)
def test_every_response_carries_the_policy_and_the_browser_defences(path: str, admin_user: Any) -> None:
    client = Client()
    client.force_login(admin_user)
    response = client.get(path)
    assert response.status_code < 500
    csp = _directives(response["Content-Security-Policy"])
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_the_api_docs_page_needs_no_inline_script(admin_user: Any) -> None:
    client = Client()
    client.force_login(admin_user)
    html = client.get("/api/v1/docs/").content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts, "the docs page loads Swagger UI"
    assert all("src=" in attrs and not body.strip() for attrs, body in scripts)


INLINE_HANDLER = re.compile(r"""<[^>]*\son[a-z]+\s*=\s*["']""", re.I)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_has_inline_script_or_handler(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not INLINE_SCRIPT.search(text), "inline <script>: move it to static/js/"
    assert not INLINE_HANDLER.search(text), "inline on…= handler: use a data attribute handled in static/js/nephele.js"
    assert "javascript:" not in text


def test_the_template_checks_can_fail() -> None:
    assert INLINE_HANDLER.search('<select onchange="this.form.submit()">')
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/x.js" defer></script>')
