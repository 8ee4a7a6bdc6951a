"""The create-VM form preselects the smallest template (issue 14: it preselected "large")."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

from tests.factories import VMTemplateFactory


def test_the_smallest_template_is_preselected(member: Any, project: Any) -> None:
    VMTemplateFactory(project=project, name="large", vcpu=8, memory_mb=16384, disk_gb=80)
    VMTemplateFactory(project=project, name="medium", vcpu=2, memory_mb=4096, disk_gb=20)
    small = VMTemplateFactory(project=project, name="small", vcpu=1, memory_mb=1024, disk_gb=10)
    c = Client()
    c.force_login(member)
    page = c.get("/compute/vms/").content.decode()
    select = re.search(r'<select name="template"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None
    names = re.findall(r'<option value="\d+"[^>]*>(\w+) —', select.group(1))
    assert names == ["small", "medium", "large"]
    # the browser preselects the first option when none is marked
    first = re.search(r'<option value="(\d+)"', select.group(1))
    assert first is not None and int(first.group(1)) == small.pk
