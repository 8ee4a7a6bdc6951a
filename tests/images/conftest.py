"""Fixtures of the image manager's tests: a real image datastore in a temporary directory."""

from __future__ import annotations

from typing import Any

import pytest

from storage.models import Datastore
from tests.browser.conftest import browser_page, live_server_url  # noqa: F401 - the browser tier's fixtures


@pytest.fixture
def datastore(db: Any, tmp_path: Any) -> Datastore:
    path = tmp_path / "images"
    path.mkdir()
    return Datastore.objects.create(name="img-ds", kind="image", path=str(path))


@pytest.fixture
def datastore2(db: Any, tmp_path: Any) -> Datastore:
    path = tmp_path / "images2"
    path.mkdir()
    return Datastore.objects.create(name="img-ds2", kind="image", path=str(path))
