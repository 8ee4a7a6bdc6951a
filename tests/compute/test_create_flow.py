"""The create-VM form (issue 14): step by step, the smallest size preselected, and the quota
the create would use shown before submitting (re-read as the size and count change)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute.models import VirtualMachine
from tenants.quotas import set_limit
from tests.factories import VMTemplateFactory

pytestmark = pytest.mark.django_db


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_smallest_size_is_preselected_not_the_largest(member: Any, project: Any, admin_user: Any) -> None:
    VMTemplateFactory(project=project, owner=admin_user, name="aaa-huge", vcpu=16, memory_mb=32768)
    small = VMTemplateFactory(project=project, owner=admin_user, name="zzz-tiny", vcpu=1, memory_mb=256)
    VMTemplateFactory(project=project, owner=admin_user, name="mmm-mid", vcpu=2, memory_mb=2048)
    page = browser(member).get("/compute/vms/?create=1").content.decode()
    assert f'<option value="{small.pk}" selected>' in page
    # offered smallest first
    assert page.index("zzz-tiny") < page.index("mmm-mid") < page.index("aaa-huge")
    # the steps, and the projection for the preselected size beside them
    for step in ("source", "capacity", "config", "review"):
        assert f'id="step-{step}" data-step="{step}"' in page
    assert 'id="create-quota"' in page and 'hx-get="/compute/vms/create/preview/"' in page


def test_quota_projection_follows_size_and_count_and_warns_before_submit(
    member: Any, project: Any, template: Any
) -> None:
    set_limit(project, "vcpu", 5)
    c = browser(member)
    # template: 2 vCPU, 1 GiB, 10 GiB disk
    one = c.get(f"/compute/vms/create/preview/?template={template.pk}&count=1").content.decode()
    assert 'data-testid="after-vcpu"' in one and "0 + 2 / 5" in one and 'data-testid="quota-over"' not in one
    assert "0 + 1024 / " in one and "0 + 10 / " in one
    three = c.get(f"/compute/vms/create/preview/?template={template.pk}&count=3").content.decode()
    assert "0 + 6 / 5" in three and 'data-testid="quota-over"' in three
    bigger = c.get(f"/compute/vms/create/preview/?template={template.pk}&count=1&vcpu=4").content.decode()
    assert "0 + 4 / 5" in bigger
    # nonsense is ignored, never a 500
    odd = c.get("/compute/vms/create/preview/?template=abc&count=-3&vcpu=99999&memory_mb=x")
    assert odd.status_code == 200
    # the projection is a preview: the create itself is still refused by the quota, field named
    resp = c.post("/compute/vms/create/", {"name": "w", "template": template.pk, "count": 3})
    assert resp.status_code == 400 and not VirtualMachine.objects.filter(name__startswith="w-").exists()
    assert 'data-testid="quota-over"' in resp.content.decode()  # the re-shown form projects the posted count


def test_a_template_of_another_tenant_is_not_projected(member: Any, project: Any, other_tenant: Any) -> None:
    theirs = VMTemplateFactory(project=other_tenant.memberships.first().project, owner=other_tenant, vcpu=64)
    page = browser(member).get(f"/compute/vms/create/preview/?template={theirs.pk}").content.decode()
    assert "+ 64 /" not in page
