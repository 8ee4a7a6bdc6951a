"""``nephele host power|bmc|maintenance|drain|activate`` through the real entry point against a
live server (uvicorn), the real Celery worker (``agent``) and a real Redfish emulator
(sushy-tools over a QEMU domain, tests/compute/bmc.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compute.models import Host, VirtualMachine
from tenants import credentials
from tests.compute import bmc as emu
from tests.servers import asgi_server

NEPHELE = Path(sys.executable).with_name("nephele")


@pytest.fixture
def cloud(agent: Any, admin_user: Any, make_sim_host: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not NEPHELE.exists():
        pytest.fail(f"{NEPHELE} is missing: run `make venv` (it installs the command line)")
    _token, secret = credentials.create_token(admin_user, name="ops")
    host = make_sim_host("cli-a")
    with asgi_server("uvicorn", {"NEPHELE_ALLOWED_HOSTS": "127.0.0.1,localhost"}) as server:
        config = tmp_path / "nephele" / "config.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEPHELE_")}
        env.update(NEPHELE_CONFIG=str(config), COLUMNS="200")
        login = subprocess.run([str(NEPHELE), "login", "--url", server.http(), "--token", secret], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert login.returncode == 0, login.stderr
        yield {"env": env, "host": host}


def nephele(cloud: dict[str, Any], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEPHELE), *args], env=cloud["env"], input=stdin, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_host_power_through_the_cli_with_a_redfish_bmc(cloud: dict[str, Any], tmp_path: Path) -> None:
    host = cloud["host"]
    with emu.bmc_domain() as domain, emu.redfish_emulator(domain, tmp_path) as address:
        set_bmc = nephele(cloud, "-o", "json", "host", "bmc", "cli-a", "--driver", "redfish", "--address", address,
                          "--username", emu.USER, "--password-stdin", stdin=emu.PASSWORD + "\n")  # fmt: skip
        assert set_bmc.returncode == 0, set_bmc.stderr
        shown = json.loads(set_bmc.stdout)
        assert shown["bmc_password_set"] is True and emu.PASSWORD not in set_bmc.stdout

        on = nephele(cloud, "-o", "json", "host", "power", "on", "cli-a")
        assert on.returncode == 0, on.stderr
        assert json.loads(on.stdout)["Power"] == "on" and domain.active()

        # a serving host: refused with the conflict exit code and the field named
        off = nephele(cloud, "host", "power", "off", str(host.pk))
        assert off.returncode == 4 and "maintenance" in off.stderr and "action" in off.stderr
        assert domain.active()

        assert nephele(cloud, "host", "maintenance", "cli-a", "--reason", "firmware").returncode == 0
        off = nephele(cloud, "-o", "json", "host", "power", "off", "cli-a")
        assert off.returncode == 0, off.stderr
        assert json.loads(off.stdout)["Power"] == "off" and not domain.active()
        status = nephele(cloud, "-o", "json", "host", "power", "status", "cli-a")
        assert status.returncode == 0 and json.loads(status.stdout)["Power"] == "off"

        back = nephele(cloud, "-o", "json", "host", "activate", "cli-a", "--wait")
        assert back.returncode == 0, back.stderr
        assert json.loads(back.stdout)["state"] == "MONITORED"
        assert Host.objects.get(pk=host.pk).power_state == "on" and domain.active()


def test_drain_wait_empties_the_host(cloud: dict[str, Any], make_sim_host: Any, member: Any, project: Any,
                                     template: Any, admin_user: Any) -> None:  # fmt: skip
    from compute import services
    from tests.conftest import wait_for

    host = cloud["host"]
    (vm,) = services.create_vms(member, project=project, template=template, name="leaver", count=1, hold=True)
    services.perform_action(admin_user, vm.pk, services.ActionRequest(action="deploy", host_id=host.pk))
    wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state == "RUNNING")
    listed = nephele(cloud, "host", "maintenance", "cli-a")
    assert listed.returncode == 0 and "leaver" in listed.stdout  # the VMs still on it
    make_sim_host("cli-b")
    drained = nephele(cloud, "-o", "json", "host", "drain", "cli-a", "--wait")
    assert drained.returncode == 0, drained.stderr
    assert VirtualMachine.objects.get(pk=vm.pk).host_id != host.pk
    assert services.power.resident_vms(host.pk) == []


def test_unknown_host_and_bad_driver_answer_clear_errors(cloud: dict[str, Any]) -> None:
    missing = nephele(cloud, "host", "power", "status", "no-such-host")
    assert missing.returncode == 3 and "no host named" in missing.stderr
    bad = nephele(cloud, "host", "bmc", "cli-a", "--driver", "carrier-pigeon")
    assert bad.returncode == 1 and "power_driver" in bad.stderr
    nobmc = nephele(cloud, "host", "power", "on", "cli-a")
    assert nobmc.returncode == 4 and "no BMC" in nobmc.stderr
