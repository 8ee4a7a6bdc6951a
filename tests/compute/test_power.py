"""Host power through real BMC emulators on loopback: sushy-tools' Redfish emulator and a
virtualbmc IPMI BMC (reached through ipmitool), each driving a real QEMU domain on qemu:///system (tests/compute/bmc.py).
The API queues the BMC call; the real Celery worker (``agent``) runs ``compute.host_power``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compute.drivers.power import BMC, PowerAction, PowerError, PowerState, get_power_driver
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from monitoring.models import AuditRecord, Event
from tests.compute import bmc as emu
from tests.conftest import client_for, wait_for


@pytest.fixture
def domain() -> Any:
    with emu.bmc_domain() as d:
        yield d


@pytest.fixture
def redfish(domain: Any, tmp_path: Path) -> Any:
    with emu.redfish_emulator(domain, tmp_path) as address:
        yield address


@pytest.fixture
def ipmi(domain: Any, tmp_path: Path) -> Any:
    with emu.virtual_bmc(domain, tmp_path) as address:
        yield address


def _configure(admin: Any, host: Host, address: str, driver: str = "redfish", password: str = emu.PASSWORD) -> Any:
    body = {"power_driver": driver, "bmc_address": address, "bmc_username": emu.USER, "bmc_password": password}
    return admin.put(f"/api/v1/hosts/{host.pk}/bmc/", body, format="json")


def _settled(pk: int) -> Host:
    wait_for(lambda: not Host.objects.get(pk=pk).power_operation)
    return Host.objects.get(pk=pk)


# --------------------------------------------------------------------------------------------
# the drivers against the emulators
# --------------------------------------------------------------------------------------------
def test_redfish_driver_switches_the_domain_through_the_emulator(redfish: str, domain: Any) -> None:
    drv = get_power_driver(BMC("redfish", redfish, emu.USER, emu.PASSWORD))
    assert drv.status() == PowerState.OFF
    assert drv.run(PowerAction.ON) == PowerState.ON and domain.active()
    assert drv.run(PowerAction.ON) == PowerState.ON  # idempotent
    assert drv.run(PowerAction.RESET) == PowerState.ON and domain.active()
    assert drv.run(PowerAction.OFF) == PowerState.OFF and not domain.active()
    with pytest.raises(PowerError, match="401"):
        get_power_driver(BMC("redfish", redfish, emu.USER, "wrong")).status()


def test_ipmi_driver_switches_the_domain_through_virtualbmc(ipmi: str, domain: Any) -> None:
    drv = get_power_driver(BMC("ipmi", ipmi, emu.USER, emu.PASSWORD))
    assert drv.status() == PowerState.OFF and not domain.active()
    assert drv.run(PowerAction.ON) == PowerState.ON and domain.active()
    assert drv.run(PowerAction.ON) == PowerState.ON and domain.active()  # idempotent
    assert drv.run(PowerAction.STATUS) == PowerState.ON
    assert drv.run(PowerAction.RESET) == PowerState.ON and domain.active()
    assert drv.run(PowerAction.OFF) == PowerState.OFF and not domain.active()
    assert drv.run(PowerAction.OFF) == PowerState.OFF  # idempotent
    assert drv.run(PowerAction.RESET) == PowerState.ON and domain.active()  # a reset of an off host powers it on
    with pytest.raises(PowerError, match="RAKP 2 HMAC is invalid"):  # ipmitool's word for a wrong password
        get_power_driver(BMC("ipmi", ipmi, emu.USER, "wrong")).status()
    assert domain.active()


def test_the_ipmi_password_is_not_on_the_command_line(ipmi: str, domain: Any, tmp_path: Path) -> None:
    """The driver runs ``ipmitool``; a stand-in that records its argv and environment shows the
    password travels in ``IPMI_PASSWORD`` only (the real ipmitool cannot report what it was given)."""
    from compute.drivers.power import IPMIPowerDriver

    record = tmp_path / "argv"
    spy = tmp_path / "ipmitool"
    spy.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\nprintf 'env=%s\\n' \"$IPMI_PASSWORD\" >> {record}\n"
        'exec ipmitool "$@"\n'
    )
    spy.chmod(0o755)
    drv = IPMIPowerDriver(BMC("ipmi", ipmi, emu.USER, emu.PASSWORD))
    drv.binary = str(spy)
    assert drv.status() == PowerState.OFF
    args = record.read_text().splitlines()
    assert f"env={emu.PASSWORD}" in args and "-E" in args and args[0:2] == ["-I", "lanplus"]
    assert not any(emu.PASSWORD in a for a in args if not a.startswith("env="))


def test_an_unreachable_ipmi_bmc_is_a_power_error_not_a_crash() -> None:
    port = emu.free_port(emu.socket.SOCK_DGRAM)  # nothing listens there
    with pytest.raises(PowerError, match="ipmi"):
        get_power_driver(BMC("ipmi", f"127.0.0.1:{port}", emu.USER, emu.PASSWORD)).status()


def test_no_power_driver_refuses_to_switch() -> None:
    drv = get_power_driver(BMC("none"))
    assert drv.status() == PowerState.UNKNOWN
    with pytest.raises(PowerError, match="no BMC"):
        drv.run(PowerAction.ON)


# --------------------------------------------------------------------------------------------
# API + task through the real worker
# --------------------------------------------------------------------------------------------
def test_power_through_the_api_with_a_redfish_bmc(
    agent: Any, make_sim_host: Any, admin_user: Any, redfish: str, domain: Any
) -> None:
    admin = client_for(admin_user)
    host = make_sim_host("pw-a")
    made = _configure(admin, host, redfish)
    assert made.status_code == 200, made.content
    assert "bmc_password" not in made.json() and made.json()["bmc_password_set"] is True
    stored = Host.objects.get(pk=host.pk).bmc_password
    assert stored and emu.PASSWORD not in stored  # not in clear
    listed = admin.get("/api/v1/hosts/").json()
    assert emu.PASSWORD not in str(listed)

    on = admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}, format="json")
    assert on.status_code == 202 and on.json()["power_operation"] == "on"
    assert _settled(host.pk).power_state == "on" and domain.active()
    assert Event.objects.filter(type="host.power.on", object_id=str(host.pk)).exists()
    assert AuditRecord.objects.filter(action="power_on", object_id=str(host.pk)).exists()

    # a serving host is not switched off
    refused = admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "off"}, format="json")
    assert refused.status_code == 409 and "maintenance" in refused.json()["detail"]
    assert domain.active()

    assert (
        admin.post(f"/api/v1/hosts/{host.pk}/maintenance/", {"action": "maintenance"}, format="json").status_code == 200
    )
    off = admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "off"}, format="json")
    assert off.status_code == 202
    assert _settled(host.pk).power_state == "off" and not domain.active()
    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "status"}, format="json").status_code == 202
    assert _settled(host.pk).power_state == "off"

    # activate powers a host its BMC reports off back on, and probes it
    back = admin.post(f"/api/v1/hosts/{host.pk}/maintenance/", {"action": "activate"}, format="json")
    assert back.status_code == 200 and back.json()["host"]["state"] == "INIT"
    wait_for(lambda: Host.objects.get(pk=host.pk).power_state == "on" and domain.active())
    wait_for(lambda: Host.objects.get(pk=host.pk).state == "MONITORED")


def test_power_through_the_api_with_an_ipmi_bmc(
    agent: Any, make_sim_host: Any, admin_user: Any, ipmi: str, domain: Any
) -> None:
    admin = client_for(admin_user)
    host = make_sim_host("pw-i")
    made = _configure(admin, host, ipmi, driver="ipmi")
    assert made.status_code == 200, made.content
    assert made.json()["power_driver"] == "ipmi" and "bmc_password" not in made.json()

    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "status"}, format="json").status_code == 202
    assert _settled(host.pk).power_state == "off"
    on = admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}, format="json")
    assert on.status_code == 202 and on.json()["power_operation"] == "on"
    assert _settled(host.pk).power_state == "on" and domain.active()
    assert Event.objects.filter(type="host.power.on", object_id=str(host.pk)).exists()

    maintenance = {"action": "maintenance"}
    assert admin.post(f"/api/v1/hosts/{host.pk}/maintenance/", maintenance, format="json").status_code == 200
    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "reset"}, format="json").status_code == 202
    assert _settled(host.pk).power_state == "on" and domain.active()
    assert Event.objects.filter(type="host.power.reset", object_id=str(host.pk)).exists()
    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "off"}, format="json").status_code == 202
    assert _settled(host.pk).power_state == "off" and not domain.active()

    # a wrong password is reported on the host, and nothing is switched
    assert _configure(admin, host, ipmi, driver="ipmi", password="not-it").status_code == 200
    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}, format="json").status_code == 202
    failed = _settled(host.pk)
    assert "RAKP 2 HMAC is invalid" in failed.power_message and not domain.active()
    assert Event.objects.filter(type="host.power.failed", object_id=str(host.pk)).exists()


def test_a_wrong_bmc_password_is_reported_on_the_host(
    agent: Any, make_sim_host: Any, admin_user: Any, redfish: str, domain: Any
) -> None:
    admin = client_for(admin_user)
    host = make_sim_host("pw-b")
    assert _configure(admin, host, redfish, password="not-it").status_code == 200
    assert admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}, format="json").status_code == 202
    settled = _settled(host.pk)
    assert "401" in settled.power_message and not domain.active()
    assert Event.objects.filter(type="host.power.failed", object_id=str(host.pk)).exists()
    page = admin.get(f"/api/v1/hosts/{host.pk}/").json()
    assert "401" in page["power_message"]


def test_bad_input_names_the_field_and_changes_nothing(make_sim_host: Any, admin_user: Any) -> None:
    admin = client_for(admin_user)
    host = make_sim_host("pw-c")
    cases = [
        ("bmc", "put", {"power_driver": "smoke-signals"}, "power_driver"),
        ("bmc", "put", {"power_driver": "redfish", "bmc_address": "ftp://x"}, "bmc_address"),
        ("bmc", "put", {"power_driver": "redfish"}, "bmc_address"),
        ("bmc", "put", {"power_driver": "ipmi", "bmc_address": "10.0.0.1:99999"}, "bmc_address"),
        ("bmc", "put", {"power_driver": "ipmi", "bmc_address": "127.0.0.1", "bmc_username": "u" * 17}, "bmc_username"),
        ("power", "post", {"action": "explode"}, "action"),
        ("maintenance", "post", {"action": "vacation"}, "action"),
    ]
    for path, method, body, field in cases:
        answer = getattr(admin, method)(f"/api/v1/hosts/{host.pk}/{path}/", body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        assert field in str(answer.json()), (body, answer.json())
    fresh = Host.objects.get(pk=host.pk)
    assert fresh.power_driver == "none" and fresh.state == "MONITORED"
    # no BMC: a power action is a conflict, not an attempt
    refused = admin.post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}, format="json")
    assert refused.status_code == 409 and "no BMC" in refused.json()["detail"]
    assert Host.objects.get(pk=host.pk).power_seq == 0


def test_power_endpoints_are_for_cloud_admins_only(make_sim_host: Any, member: Any, admin_user: Any) -> None:
    host = make_sim_host("pw-d")
    user = client_for(member)
    for method, path, body in [
        ("put", "bmc", {"power_driver": "none"}),
        ("post", "power", {"action": "status"}),
        ("post", "maintenance", {"action": "maintenance"}),
        ("get", "maintenance", None),
    ]:
        answer = getattr(user, method)(f"/api/v1/hosts/{host.pk}/{path}/", body, format="json")
        assert answer.status_code in (403, 404), (path, answer.status_code)
    assert Host.objects.get(pk=host.pk).state == "MONITORED"
    assert client_for(None).post(f"/api/v1/hosts/{host.pk}/power/", {"action": "on"}).status_code in (401, 403)


def test_a_redelivered_or_superseded_power_task_does_nothing(
    make_sim_host: Any, admin_user: Any, redfish: str, domain: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from compute import services
    from compute.tasks import host_power

    host = make_sim_host("pw-e")
    services.power.configure_bmc(
        admin_user, host.pk, power_driver="redfish", bmc_address=redfish, bmc_username=emu.USER,
        bmc_password=emu.PASSWORD,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        services.power.request_power(admin_user, host.pk, "on")
    seq = Host.objects.get(pk=host.pk).power_seq
    assert host_power(host.pk, seq) == "on" and domain.active()
    assert host_power(host.pk, seq) == "stale"  # redelivered after it finished
    assert host_power(host.pk, seq - 1) == "stale"
    assert Event.objects.filter(type="host.power.on").count() == 1


def test_host_ha_fences_a_failed_host_through_its_bmc(
    agent: Any,
    make_sim_host: Any,
    member: Any,
    project: Any,
    template: Any,
    admin_user: Any,
    settings: Any,
    redfish: str,
    domain: Any,
) -> None:
    from compute import services
    from compute.tasks import probe_host
    from tests.compute.test_ha import _deploy_ha_vm, _kill_host

    settings.NEPHELE_HOST_FAILED_PROBES = 1
    settings.NEPHELE_FENCE_COMMAND = "false"  # not used: the BMC fences
    a, b = make_sim_host("a"), make_sim_host("b")
    services.power.configure_bmc(
        admin_user, a.pk, power_driver="redfish", bmc_address=redfish, bmc_username=emu.USER,
        bmc_password=emu.PASSWORD,
    )  # fmt: skip
    get_power_driver(BMC("redfish", redfish, emu.USER, emu.PASSWORD)).run(PowerAction.ON)  # "host a" runs
    vm = _deploy_ha_vm(member, project, template, admin_user, a)
    _kill_host(a)
    assert probe_host(a.pk).startswith("error")
    wait_for(lambda: VirtualMachine.objects.filter(pk=vm.pk, state=S.RUNNING, host=b).exists(), timeout=60)
    assert not domain.active()  # powered off through the Redfish BMC before the VM moved
    fenced = Event.objects.get(type="host.fenced")
    assert fenced.payload["via"] == "redfish"
    assert fenced.pk < Event.objects.filter(type="virtualmachine.evacuated").first().pk  # type: ignore[union-attr]
    assert Host.objects.get(pk=a.pk).power_state == "off"


def test_fencing_through_an_unreachable_bmc_moves_nothing(
    agent: Any, make_sim_host: Any, member: Any, project: Any, template: Any, admin_user: Any, settings: Any
) -> None:
    from compute import services
    from compute.tasks import host_failover, probe_host
    from tests.compute.test_ha import _deploy_ha_vm, _kill_host

    settings.NEPHELE_HOST_FAILED_PROBES = 1
    a, _b = make_sim_host("a"), make_sim_host("b")
    dead = f"http://127.0.0.1:{emu.free_port()}"  # nothing listens there
    services.power.configure_bmc(admin_user, a.pk, power_driver="redfish", bmc_address=dead, bmc_password="x")
    vm = _deploy_ha_vm(member, project, template, admin_user, a)
    _kill_host(a)
    probe_host(a.pk)
    wait_for(lambda: Event.objects.filter(type="host.fence_failed").exists(), timeout=60)
    assert host_failover(a.pk) == "fencing failed: nothing moved"
    assert VirtualMachine.objects.get(pk=vm.pk).host_id == a.pk
