"""Host failure semantics: detection after K missed probes at the probe interval, no restart of HA
VMs elsewhere without a fence unless an administrator confirms the host is down, and VMs of a
failed host shown UNKNOWN until the host answers again. Through the real Celery agent on
libvirt's test driver, on PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from compute.drivers.base import DomainSpec
from compute.drivers.registry import get_driver
from compute.models import Host, VirtualMachine
from compute.states import HostState
from compute.states import VMState as S
from monitoring.models import Event
from tests.compute.test_ha import _deploy_ha_vm, _kill_host
from tests.conftest import client_for, wait_for


def _silent_for(host: Host, seconds: float) -> None:
    Host.objects.filter(pk=host.pk).update(last_probe_at=timezone.now() - timedelta(seconds=seconds))


def test_a_host_is_error_after_k_missed_probe_intervals_not_before(make_sim_host: Any, settings: Any) -> None:
    from compute.tasks import probe_hosts

    settings.NEPHELE_HOST_FAILED_PROBES = 3
    host = make_sim_host("quiet")
    Host.objects.filter(pk=host.pk).update(state=HostState.MONITORED)
    interval = host.cluster.monitor_interval_s if host.cluster else 10

    _silent_for(host, 2 * interval + 0.5)  # two intervals without an answer: two missed probes
    probe_hosts()
    host.refresh_from_db()
    assert (host.state, host.failed_probes) == (HostState.MONITORED, 2)

    _silent_for(host, 3 * interval + 0.5)  # the third: ERROR
    probe_hosts()
    host.refresh_from_db()
    assert host.state == HostState.ERROR, host.state_message
    assert f"no probe answer for 3 × {interval} s" in host.state_message
    assert Event.objects.filter(type="host.state.ERROR", object_id=str(host.pk)).count() == 1


def test_without_a_fence_ha_vms_wait_for_the_operator_and_move_when_confirmed(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any
) -> None:
    from compute.tasks import probe_host

    settings.NEPHELE_HOST_FAILED_PROBES = 1
    settings.NEPHELE_FENCE_COMMAND = ""
    a, b = make_sim_host("a"), make_sim_host("b")
    vm = _deploy_ha_vm(member, project, template, admin_user, a)
    _kill_host(a)
    probe_host(a.pk)
    wait_for(lambda: Event.objects.filter(type="host.failover_awaits_confirmation").exists(), timeout=30)
    fresh = VirtualMachine.objects.get(pk=vm.pk)
    assert (fresh.host_id, fresh.state) == (a.pk, S.UNKNOWN)  # not restarted: it may still run on a

    # a member cannot confirm; the API names the allowed actions
    assert client_for(member).post(f"/api/v1/hosts/{a.pk}/action/", {"action": "confirm_down"}).status_code in (
        403,
        404,
    )
    bad = client_for(admin_user).post(f"/api/v1/hosts/{a.pk}/action/", {"action": "explode"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "action"

    r = client_for(admin_user).post(f"/api/v1/hosts/{a.pk}/action/", {"action": "confirm_down"}, format="json")
    assert r.status_code == 200, r.content
    wait_for(lambda: VirtualMachine.objects.filter(pk=vm.pk, state=S.RUNNING, host=b).exists(), timeout=30)
    story = list(Event.objects.order_by("pk").values_list("type", flat=True))
    assert story.index("host.confirmed_down") < story.index("virtualmachine.evacuated")
    assert "host.fenced" not in story


def test_confirming_a_host_that_is_not_in_error_is_refused(make_sim_host: Any, admin_user: Any) -> None:
    host = make_sim_host("fine")
    r = client_for(admin_user).post(f"/api/v1/hosts/{host.pk}/action/", {"action": "confirm_down"}, format="json")
    assert r.status_code == 409 and "only a host in ERROR" in r.json()["detail"]


def test_vms_of_a_failed_host_show_unknown_and_come_back_running(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, settings: Any
) -> None:
    from pathlib import Path

    from compute.tasks import probe_host, reconcile_host

    settings.NEPHELE_HOST_FAILED_PROBES = 1
    a = make_sim_host("a")
    pk = (
        client_for(member)
        .post("/api/v1/vms/", {"name": "plain", "project": project.pk, "template": template.pk}, format="json")
        .json()[0]["id"]
    )
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING)
    node = a.uri.removeprefix("test://")
    _kill_host(a)
    probe_host(a.pk)
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.UNKNOWN, timeout=30)
    assert "is in ERROR" in VirtualMachine.objects.get(pk=pk).state_changes.order_by("pk").last().reason
    assert client_for(member).get(f"/api/v1/vms/{pk}/").json()["state"] == S.UNKNOWN

    Path(node + ".down").rename(node)  # the host answers again, its domain still runs
    vm = VirtualMachine.objects.get(pk=pk)
    drv = get_driver("libvirt", a.uri)  # the simulated host's fresh connection lost it: define it again
    drv.define(DomainSpec(name=vm.domain_name, title=vm.name, uuid=str(vm.uuid), vcpu=vm.vcpu, memory_mb=vm.memory_mb))
    drv.start(vm.domain_name)
    assert probe_host(a.pk) == "ok"
    assert Host.objects.get(pk=a.pk).state == HostState.MONITORED
    reconcile_host(a.pk)
    assert VirtualMachine.objects.get(pk=pk).state == S.RUNNING
