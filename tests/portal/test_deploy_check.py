"""The production settings pass Django's deployment checklist (what `make check-deploy` runs)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from typing import Any

from django.conf import settings


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings_production", **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_production_settings_pass_the_deployment_checklist() -> None:
    result = run_check(NEPHELE_SECRET_KEY=secrets.token_urlsafe(64), NEPHELE_ALLOWED_HOSTS="cloud.example.org")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_a_weak_secret() -> None:
    result = run_check(NEPHELE_SECRET_KEY="short", NEPHELE_ALLOWED_HOSTS="cloud.example.org")
    assert result.returncode != 0 and "NEPHELE_SECRET_KEY" in result.stderr


def test_api_docs_page_uses_no_cdn(client: Any, db: Any) -> None:
    html = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in html and "cdn.jsdelivr" not in html and "unpkg" not in html
