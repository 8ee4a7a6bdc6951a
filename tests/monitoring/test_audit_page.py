"""The audit trail page (issue 14): the shared table component (sorting, previous / next pages,
column choice), only the records the user may see, at a cost that does not grow with them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services
from tenants.quotas import set_limit
from tests.conftest import page_queries
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory

pytestmark = pytest.mark.django_db


def test_audit_page_shows_ones_own_records_in_the_shared_table(member: Any, project: Any, template: Any) -> None:
    for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
        set_limit(project, resource, -1)
    services.create_vms(member, project=project, template=template, name="audited", hold=True)
    other = ProjectFactory()
    stranger = UserFactory(username="audit-stranger")
    MembershipFactory(user=stranger, project=other)
    services.create_vms(stranger, project=other, template=VMTemplateFactory(project=other, owner=stranger),
                        name="hidden-one", hold=True)  # fmt: skip
    c = Client()
    c.force_login(member)
    few, page = page_queries(c, "/events/audit/?per_page=25")
    assert "audited" in page and "hidden-one" not in page
    assert '<th scope="col" class="c-time" aria-sort="descending">' in page  # the shared header, sorted
    assert 'id="audit-columns"' in page and 'class="pager"' in page
    services.create_vms(member, project=project, template=template, name="many", count=40, hold=True)
    many, page = page_queries(c, "/events/audit/?per_page=25")
    assert many == few, (few, many)
    assert 'rel="next"' in page
    # filters and the column choice
    page = c.get("/events/audit/?q=audited&columns=1&show=project").content.decode()
    assert "audited" in page and "many-1" not in page
    assert '[data-table="audit"] .c-actor, [data-table="audit"] .c-result' in page
    assert c.get("/events/audit/?sort=bogus&page=x").status_code == 200
