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


def test_create_from_an_image_through_the_form(member: Any, project: Any, template: Any) -> None:
    from network.models import VMNic
    from storage.models import VMDisk
    from tests.images.factories import ready_image
    from tests.network.factories import make_network

    img = ready_image(member, project, "my-os")
    net = make_network(member, project)
    c = browser(member)
    page = c.get("/compute/vms/?create=1").content.decode()
    assert f'<option value="{img.pk}">my-os' in page and f'value="{net.pk}"' in page
    assert 'value="image"' in page and 'name="source"' in page
    # from an image the size is needed: said beside the fields, nothing created
    bad = c.post("/compute/vms/create/", {"source": "image", "image": img.pk, "name": "own", "count": 1})
    assert bad.status_code == 400 and "Needed when starting from an image." in bad.content.decode()
    preview = c.get(f"/compute/vms/create/preview/?source=image&image={img.pk}&vcpu=3&memory_mb=512&disk_gb=4&count=2")
    assert "0 + 6 /" in preview.content.decode() and "0 + 8 /" in preview.content.decode()
    resp = c.post("/compute/vms/create/", {"source": "image", "image": img.pk, "name": "own", "count": 1, "vcpu": 1,
                                           "memory_mb": 512, "disk_gb": 1, "networks": [net.pk], "hold": "on"})  # fmt: skip
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    vm = VirtualMachine.objects.get(name="own")
    assert vm.template_id is None and VMDisk.objects.get(vm=vm, kind="disk").image_id == img.pk
    assert VMNic.objects.filter(vm=vm, network=net).exists()
    # a template create still works, with an extra network
    resp = c.post("/compute/vms/create/", {"source": "template", "template": template.pk, "name": "tpl", "count": 1,
                                           "networks": [net.pk], "hold": "on"})  # fmt: skip
    assert resp.status_code == 302
    assert VMNic.objects.filter(vm__name="tpl", network=net).exists()
