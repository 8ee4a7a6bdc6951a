"""Regression (issue 12): ``PATCH`` / ``PUT /api/v1/images/{id}/`` answered 500 on PostgreSQL for
everyone: ``update_image`` locked the row (``SELECT … FOR UPDATE``) outside a transaction. The
test runs without the test case's wrapping transaction, as a real request does."""

from __future__ import annotations

from typing import Any

import pytest

from images.models import Image
from monitoring.models import AuditRecord
from tests.conftest import client_for, requires_postgres

from .factories import ready_image

pytestmark = [pytest.mark.postgres, requires_postgres()]


@pytest.mark.parametrize("method", ["patch", "put"])
def test_patch_and_put_an_image_answer_200(
    transactional_db: Any, member: Any, project: Any, datastore: Any, method: str
) -> None:
    img = ready_image(member, project, name="base", datastore=datastore)
    resp = getattr(client_for(member), method)(
        f"/api/v1/images/{img.pk}/", {"name": "renamed", "description": "after"}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert Image.objects.get(pk=img.pk).name == "renamed"
    assert AuditRecord.objects.filter(object_type="image", object_id=str(img.pk), action="update").exists()
