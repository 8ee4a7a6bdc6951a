"""The life-cycle state machine through the service layer and the API, on libvirt's test driver.

Given a VM brought into each state by real actions, when every action is requested, then an
allowed action reaches its target state and a refused one answers 409 and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compute.models import Host, VirtualMachine, VMStateChange
from compute.states import ACTIONS, ON_HOST, Action
from compute.states import VMState as S
from monitoring.models import AuditRecord
from tests.conftest import client_for

from .helpers import act, drive_to, settle

STABLE = [
    S.PENDING, S.HOLD, S.RUNNING, S.SUSPENDED, S.POWEROFF, S.STOPPED, S.UNDEPLOYED, S.UNKNOWN,
    S.BOOT_FAILURE, S.EPILOG_FAILURE, S.DONE,
]  # fmt: skip

# Where each allowed (action, source) pair ends once the agent has done its work.
FINAL: dict[str, Any] = {
    Action.DEPLOY: S.RUNNING,
    Action.HOLD: S.HOLD,
    Action.RELEASE: S.RUNNING,  # back to PENDING, then the scheduler places it
    Action.SUSPEND: S.SUSPENDED,
    Action.RESUME: S.RUNNING,
    Action.POWEROFF: S.POWEROFF,
    Action.REBOOT: S.RUNNING,
    Action.STOP: S.STOPPED,
    Action.UNDEPLOY: S.UNDEPLOYED,
    Action.TERMINATE: S.DONE,
    Action.MIGRATE: lambda src: S.POWEROFF if src == S.POWEROFF else S.RUNNING,
    Action.RESIZE: lambda src: S.RUNNING if src == S.PENDING else src,
    Action.RECOVER: lambda src: S.DONE,  # recover=delete, tested here; the other options below
}


def _params(action: str) -> dict[str, Any]:
    return {
        Action.RESIZE: {"vcpu": 1, "memory_mb": 768},
        Action.RECOVER: {"recover": "delete"},
    }.get(action, {})


@pytest.fixture
def hosts(make_sim_host: Any) -> list[Host]:
    return [make_sim_host("sim-a"), make_sim_host("sim-b")]


def _snapshot(vm: VirtualMachine) -> tuple[Any, ...]:
    vm.refresh_from_db()
    return (vm.state, vm.operation, vm.operation_seq, vm.host_id, vm.vcpu, vm.memory_mb)


@pytest.mark.parametrize("source", STABLE)
def test_every_action_from_every_state(
    source: str,
    hosts: list[Host],
    admin_user: Any,
    member: Any,
    project: Any,
    template: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api = client_for(admin_user)
    for action in ACTIONS:
        vm = drive_to(source, user=member, admin=admin_user, project=project, template=template)
        before = _snapshot(vm)
        audits, changes = AuditRecord.objects.count(), VMStateChange.objects.count()
        with django_capture_on_commit_callbacks() as queued:
            resp = api.post(f"/api/v1/vms/{vm.pk}/action/", {"action": action, **_params(action)}, format="json")
        if source in ACTIONS[action].allowed_from:
            assert resp.status_code == 202, (source, action, resp.json())
            settle()
            vm.refresh_from_db()
            final = FINAL[action]
            expected = final(source) if callable(final) else final
            assert vm.state == expected, (source, action, vm.state, vm.last_error, vm.schedule_message)
            assert not vm.operation
            assert (vm.host_id is not None) == (vm.state in ON_HOST), (source, action, vm.state)
        else:
            assert resp.status_code == 409, (source, action, resp.status_code, resp.content)
            assert source in resp.json()["detail"]
            assert _snapshot(vm) == before
            assert AuditRecord.objects.count() == audits and VMStateChange.objects.count() == changes
            assert queued == []
        # leave nothing behind for the next action
        vm.refresh_from_db()
        if vm.state != S.DONE:
            act(
                admin_user,
                vm,
                Action.RECOVER if vm.state in ACTIONS[Action.RECOVER].allowed_from else Action.TERMINATE,
                recover="delete",
                hard=True,
            )
            settle(schedule=False)
    for host in Host.objects.all():
        assert (host.alloc_vcpu, host.alloc_memory_mb, host.alloc_disk_gb) == (0, 0, 0), host.name


@pytest.mark.parametrize(
    "how,expected", [("success", S.POWEROFF), ("failure", S.POWEROFF), ("retry", S.RUNNING), ("delete", S.DONE)]
)
def test_recover_from_boot_failure(
    how: str, expected: str, hosts: list[Host], admin_user: Any, member: Any, project: Any, template: Any
) -> None:
    vm = drive_to(S.BOOT_FAILURE, user=member, admin=admin_user, project=project, template=template)
    act(admin_user, vm, Action.RECOVER, recover=how)
    settle(schedule=False)
    vm.refresh_from_db()
    if how == "success":
        expected = S.RUNNING  # the boot is taken as done
    assert vm.state == expected, (vm.state, vm.last_error)


def test_recover_is_admin_only(hosts: list[Host], admin_user: Any, member: Any, project: Any, template: Any) -> None:
    vm = drive_to(S.EPILOG_FAILURE, user=member, admin=admin_user, project=project, template=template)
    resp = client_for(member).post(
        f"/api/v1/vms/{vm.pk}/action/", {"action": "recover", "recover": "delete"}, format="json"
    )
    assert resp.status_code == 403
    vm.refresh_from_db()
    assert vm.state == S.EPILOG_FAILURE


USER_ACTIONS = [a for a, spec in ACTIONS.items() if not spec.admin_only]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.sampled_from(USER_ACTIONS), min_size=1, max_size=12))
def test_random_action_sequences_stay_consistent(
    actions: list[str], hosts: list[Host], admin_user: Any, member: Any, project: Any, template: Any
) -> None:
    """Whatever a user clicks, in any order: every answer is 202 or 409, the VM is never left
    busy, holds capacity exactly while it is on a host, and hosts are never overbooked."""
    api = client_for(member)
    (vm,) = [drive_to(S.RUNNING, user=member, admin=admin_user, project=project, template=template)]
    for action in actions:
        resp = api.post(f"/api/v1/vms/{vm.pk}/action/", {"action": action, **_params(action)}, format="json")
        assert resp.status_code in (202, 409), resp.content
        settle()
        vm.refresh_from_db()
        assert not vm.operation, (action, vm.state)
        assert (vm.host_id is not None) == (vm.state in ON_HOST), (action, vm.state)
        for host in Host.objects.all():
            on_it = VirtualMachine.objects.filter(host=host).exclude(state=S.DONE)
            assert host.alloc_vcpu == sum(v.vcpu for v in on_it), (action, host.name)
            assert host.alloc_memory_mb == sum(v.memory_mb for v in on_it)
            assert host.alloc_vcpu <= host.total_vcpu
    if vm.state != S.DONE:
        act(member, vm, Action.TERMINATE, hard=True)
        settle()
