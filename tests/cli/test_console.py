"""``nephele vm console-log`` and ``nephele vm console-token`` through the real entry point
against a live server (uvicorn on the test PostgreSQL and Redis; tests/cli/conftest.py's ``cloud``), whose
state directory (``server_state``) is where these tests write the console logs it serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compute import services
from compute.models import VirtualMachine
from compute.services.console import console_log_path
from compute.states import VMState as S
from tests.compute.helpers import settle

from .conftest import nephele

LOG = b"SeaBIOS\nNEPHELE-GUEST-READY hostname=cli\nNEPHELE-MARKER vm-cli\n"


def server_log(cloud: dict[str, Any], vm: VirtualMachine) -> Path:
    """Where the tier's live server reads ``vm``'s console log (its own state directory)."""
    from django.conf import settings

    return Path(cloud["server_state"]) / console_log_path(vm).relative_to(settings.NEPHELE_STATE_DIR)


def _vm(cloud: dict[str, Any], **kw: Any) -> VirtualMachine:
    from compute.models import VMTemplate
    from tenants.models import Project

    template = VMTemplate.objects.get(pk=cloud["template"])
    (vm,) = services.create_vms(
        template.owner, project=Project.objects.get(pk=cloud["project"]), template=template, name="cli-vm", **kw
    )
    return vm


def _login(cloud: dict[str, Any]) -> None:
    done = nephele(cloud, "login", "--url", cloud["url"], "--token", cloud["token"])
    assert done.returncode == 0, done.stderr


def test_console_log_prints_saves_and_tails(cloud: dict[str, Any], tmp_path: Path) -> None:
    vm = _vm(cloud, hold=True)
    _login(cloud)
    missing = nephele(cloud, "vm", "console-log", str(vm.pk))
    assert missing.returncode == 3 and "no console log" in missing.stderr

    path = server_log(cloud, vm)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(LOG)
    shown = nephele(cloud, "vm", "console-log", str(vm.pk))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == LOG.decode()
    tail = nephele(cloud, "vm", "console-log", str(vm.pk), "--bytes", "7")
    assert tail.returncode == 0 and tail.stdout == "vm-cli\n"[-7:]
    saved = tmp_path / "saved.log"
    done = nephele(cloud, "vm", "console-log", str(vm.pk), "--output-file", str(saved))
    assert done.returncode == 0, done.stderr
    assert saved.read_bytes() == LOG
    bad = nephele(cloud, "vm", "console-log", str(vm.pk), "--bytes", "0")
    assert bad.returncode == 1 and "bytes" in bad.stderr


def test_console_token_for_a_running_vm_only(
    cloud: dict[str, Any],
    make_sim_host: Any,
) -> None:
    held = _vm(cloud, hold=True)
    _login(cloud)
    refused = nephele(cloud, "vm", "console-token", str(held.pk))
    assert refused.returncode == 4 and "RUNNING" in refused.stderr

    make_sim_host("sim-cli")
    vm = _vm(cloud)
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING
    done = nephele(cloud, "-o", "json", "vm", "console-token", str(vm.pk))
    assert done.returncode == 0, done.stderr
    ticket = json.loads(done.stdout)
    assert (
        ticket["websocket"].startswith("ws://127.0.0.1:")
        and f"/ws/console/{vm.pk}/serial/?token=" in ticket["websocket"]
    )
    assert ticket["token"] in ticket["websocket"]
