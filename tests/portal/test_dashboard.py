"""The dashboard's busiest-VMs card: the user's own VMs are ranked, however busy the rest of the
cloud is (the cloud-wide top N used to be taken before the tenant filter)."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.utils import timezone

from compute import services
from monitoring.models import Kind, Metric, Sample
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory


def test_a_tenant_sees_its_busiest_vms_in_a_busy_cloud(member: Any, project: Any, template: Any) -> None:
    other = ProjectFactory()
    stranger = UserFactory(username="busy-neighbour")
    MembershipFactory(user=stranger, project=other)
    theirs = services.create_vms(
        stranger, project=other, template=VMTemplateFactory(project=other, owner=stranger), name="hot", count=60,
        hold=True,
    )  # fmt: skip
    (mine,) = services.create_vms(member, project=project, template=template, name="warm", hold=True)
    now = timezone.now()
    rows = [Sample(ts=now, kind=Kind.VM, object_id=vm.pk, metric=Metric.CPU_PCT, value=95.0) for vm in theirs]
    rows.append(Sample(ts=now, kind=Kind.VM, object_id=mine.pk, metric=Metric.CPU_PCT, value=12.5))
    Sample.objects.bulk_create(rows)

    c = Client()
    c.force_login(member)
    page = c.get("/").content.decode()
    assert f'href="/vms/{mine.pk}/">warm</a>' in page or ">warm</a>" in page
    assert "12.5%" in page
    assert "hot-" not in page  # nobody else's VM
    assert "No samples yet." not in page
