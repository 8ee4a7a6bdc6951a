"""The host agent runs without a database: a real agent process started with no DATABASE_URL and
no Django settings deploys and terminates a VM through the real broker, while the control
plane (an in-process Celery worker on the tests' database) writes every state change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from compute import agent as agent_steps
from compute.models import VirtualMachine
from compute.states import Action, VMState
from tests.conftest import client_for, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    return env


PROBE = """
import sys, hostagent.tasks, hostagent.celery
print(" ".join(sorted(m for m in sys.modules if m.startswith(("django", "compute.models", "compute.services",
      "compute.tasks", "storage.models", "network.models", "tenants", "portal")))))
"""


def test_the_agent_code_loads_no_django_orm_settings_or_services() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=_agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # kombu's JSON encoder imports django.utils.functional when Django is installed (for lazy
    # strings); nothing else of Django, and nothing of the control plane, is loaded
    assert set(out.stdout.split()) <= {"django", "django.utils", "django.utils.functional",
                                       "django.utils.regex_helper", "django.utils.version"}, out.stdout  # fmt: skip


def test_the_agents_step_names_match_the_state_machine() -> None:
    for name in ("PROLOG", "BOOT", "SAVE", "SHUTDOWN", "EPILOG", "MIGRATE"):
        assert getattr(agent_steps.S, name) == getattr(VMState, name).value
    for name in ("REBOOT", "DEPLOY", "SUSPEND", "TERMINATE", "STOP"):
        assert getattr(agent_steps.Action, name) == getattr(Action, name).value


@pytest.fixture
def dbless_agent(make_sim_host: Any) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    host = make_sim_host("far", agent="dbless")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hostagent", "--agent", "dbless", "--queues", host.queue, "--loglevel", "WARNING"],
        cwd=ROOT, env=_agent_env(), start_new_session=True,
    )  # fmt: skip
    try:
        yield host, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_vm_deploys_and_terminates_through_an_agent_without_database(
    agent: Any, dbless_agent: tuple[Any, subprocess.Popen[bytes]], member: Any, project: Any, template: Any
) -> None:
    host, proc = dbless_agent
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert not any(v.startswith((b"DATABASE_URL=", b"DJANGO_SETTINGS_MODULE=")) for v in environ)

    client = client_for(member)
    r = client.post("/api/v1/vms/", {"name": "far-vm", "project": project.pk, "template": template.pk}, format="json")
    assert r.status_code == 202, r.content
    pk = r.json()[0]["id"]
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == VMState.RUNNING, timeout=60)
    vm = VirtualMachine.objects.get(pk=pk)
    assert vm.host_id == host.pk and vm.hv_state == "running"  # reported by the agent

    r = client.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
    assert r.status_code == 202, r.content
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == VMState.DONE, timeout=60)


def test_the_agents_volume_steps_match_the_volume_actions() -> None:
    from storage import volumeops
    from storage.states import VolumeAction

    actions = {a.value for a in VolumeAction} - {VolumeAction.RECOVER.value}
    assert set(volumeops.STEPS) == actions


def test_a_late_report_of_an_earlier_step_is_refused(
    make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any
) -> None:
    """Every step of an operation shares its sequence number: a redelivered PROLOG report that
    arrives while the VM BOOTs must not complete BOOT."""
    from compute import services
    from compute.tasks import step_done
    from specs import StepResult
    from specs.codec import encode

    host = make_sim_host("late")
    (vm,) = services.create_vms(member, project=project, template=template, name="late", hold=True)
    services.perform_action(admin_user, vm.pk, services.ActionRequest(action="deploy", host_id=host.pk))
    vm.refresh_from_db()
    seq = vm.operation_seq
    ok = encode(StepResult(ok=True, hv_state="shutoff"))
    assert step_done(vm.pk, seq, ok, "PROLOG") == VMState.BOOT
    assert step_done(vm.pk, seq, ok, "PROLOG") == "stale"  # the same report delivered again
    assert VirtualMachine.objects.get(pk=vm.pk).state == VMState.BOOT
    assert step_done(vm.pk, seq - 1, ok, "BOOT") == "stale"  # an earlier operation's
    assert step_done(vm.pk, seq, encode(StepResult(ok=True, hv_state="running")), "BOOT") == VMState.RUNNING
