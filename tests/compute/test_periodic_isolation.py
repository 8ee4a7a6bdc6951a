"""Poison isolation: a periodic sweep processes items one at a time inside its own error boundary,
so one bad row is skipped and reported while the rest of the cloud keeps being scheduled."""

from __future__ import annotations

from typing import Any

from compute import services
from compute.models import VirtualMachine
from compute.states import VMState as S


def test_a_poison_vm_is_skipped_and_reported_and_the_others_are_placed(
    make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    from compute.tasks import schedule_pending

    make_sim_host("a")
    bad, good = (services.create_vms(member, project=project, template=template, name=n, hold=True)[0] for n in "xy")
    # rows that predate validation (or were written by hand): labels that are not a mapping
    VirtualMachine.objects.filter(pk=bad.pk).update(state=S.PENDING, required_labels=[1, 2])
    VirtualMachine.objects.filter(pk=good.pk).update(state=S.PENDING)

    result = schedule_pending()

    assert list(result["failed"]) == [str(bad.pk)], result
    assert "AttributeError" in result["failed"][str(bad.pk)]
    assert result["done"] == 1
    assert VirtualMachine.objects.get(pk=good.pk).state != S.PENDING  # placed despite the poison row
    assert VirtualMachine.objects.get(pk=bad.pk).state == S.PENDING  # untouched, tried again next run


def test_the_api_refuses_labels_that_are_not_a_mapping(project_admin: Any, project: Any) -> None:
    from tests.conftest import client_for

    r = client_for(project_admin).post(
        "/api/v1/templates/",
        {"project": project.pk, "name": "poison", "vcpu": 1, "memory_mb": 64, "required_labels": [1, 2]},
        format="json",
    )
    assert r.status_code == 400 and r.json()["field"] == "required_labels", r.content
