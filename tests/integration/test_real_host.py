"""A real host: libvirtd + QEMU (TCG) running a guest built from Debian packages.

``make test`` builds the guest (scripts/build-test-guest.sh: Debian kernel + busybox initramfs
whose init prints a marker on the serial console) and starts libvirtd
(scripts/start-libvirtd.sh). The test registers qemu:///system as a host through the API,
deploys the guest through the API and the real Celery agent, reads the marker from the guest's
serial log, then powers it off (ACPI), resumes it and terminates it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as dj_settings

from compute.drivers.registry import get_driver
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from tests.conftest import client_for, wait_for

GUEST = Path(dj_settings.BASE_DIR) / ".cache" / "guest"
pytestmark = pytest.mark.integration


def _libvirtd_up() -> bool:
    try:
        return (
            subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def real_host_ready() -> None:
    if not (GUEST / "vmlinuz").exists() or not _libvirtd_up():
        if "CI" in __import__("os").environ:
            pytest.fail("the real-host tier needs libvirtd and the test guest: run `make test`")
        pytest.skip("libvirtd or the test guest is missing: run `make test` (it builds and starts both)")


def _serial(vm: VirtualMachine) -> str:
    path = Path(dj_settings.NEPHELE_STATE_DIR) / "consoles" / f"{vm.domain_name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_guest_boots_on_the_real_qemu_host(
    real_host_ready: None, agent: Any, admin_user: Any, member: Any, project: Any, settings: Any
) -> None:
    settings.NEPHELE_SHUTDOWN_TIMEOUT = 60
    admin = client_for(admin_user)
    resp = admin.post(
        "/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    host_id = resp.json()["id"]
    host = wait_for(lambda: Host.objects.filter(pk=host_id, state="MONITORED").first(), timeout=60)
    assert host.total_vcpu > 0 and host.total_memory_mb > 0

    image = admin.post(
        "/api/v1/boot-images/",
        {
            "project": project.pk, "name": "tiny-guest", "kind": "kernel", "public": True,
            "kernel_path": str(GUEST / "vmlinuz"), "initrd_path": str(GUEST / "initrd.img"),
            "cmdline": "console=ttyS0 quiet nephele.marker=vm-{vm_name}",
        },
        format="json",
    )  # fmt: skip
    assert image.status_code == 201, image.content
    api = client_for(member)
    tpl = api.post(
        "/api/v1/templates/",
        {
            "project": project.pk,
            "name": "tiny",
            "vcpu": 1,
            "memory_mb": 256,
            "boot_image": image.json()["id"],
            "hypervisor": "qemu",
        },
        format="json",
    )
    assert tpl.status_code == 201, tpl.content
    created = api.post(
        "/api/v1/vms/", {"name": "guest", "project": project.pk, "template": tpl.json()["id"]}, format="json"
    )
    assert created.status_code == 202, created.content
    pk = created.json()[0]["id"]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    assert vm.host_id == host_id
    try:
        wait_for(lambda: f"NEPHELE-MARKER vm-{pk}" in _serial(vm), timeout=180, interval=1)
        drv = get_driver("libvirt", "qemu:///system")
        assert drv.get_info(vm.domain_name).power_state.value == "running"

        assert api.post(f"/api/v1/vms/{pk}/action/", {"action": "poweroff"}, format="json").status_code == 202
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.POWEROFF, timeout=90)
        assert drv.get_info(vm.domain_name).power_state.value == "shutoff"
        assert "NEPHELE-GUEST-POWEROFF" in _serial(vm)  # it was an ACPI shutdown, seen by the guest

        marker_count = _serial(vm).count(f"NEPHELE-MARKER vm-{pk}")
        assert api.post(f"/api/v1/vms/{pk}/action/", {"action": "resume"}, format="json").status_code == 202
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING, timeout=90)
        wait_for(lambda: _serial(vm).count(f"NEPHELE-MARKER vm-{pk}") > marker_count, timeout=180, interval=1)
    finally:
        api.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.DONE, timeout=90)
    assert all(d.name != vm.domain_name for d in get_driver("libvirt", "qemu:///system").list_domains())


def test_killed_guest_is_restarted(
    real_host_ready: None, agent: Any, admin_user: Any, member: Any, project: Any, settings: Any
) -> None:
    """Kill the QEMU process of a guest: libvirt reports the crash, the VM is booted again and
    its marker appears a second time; the event log tells the story."""
    import os
    import signal

    from compute.models import BootImage, VMTemplate
    from monitoring.models import Event

    admin = client_for(admin_user)
    host_id = admin.post(
        "/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"}, format="json"
    ).json()["id"]
    wait_for(lambda: Host.objects.filter(pk=host_id, state="MONITORED").exists(), timeout=60)
    image = BootImage.objects.create(
        project=project, owner=admin_user, name="tiny", kind="kernel", public=True, kernel_path=str(GUEST / "vmlinuz"),
        initrd_path=str(GUEST / "initrd.img"), cmdline="console=ttyS0 quiet nephele.marker=vm-{vm_name}",
    )  # fmt: skip
    tpl = VMTemplate.objects.create(project=project, owner=admin_user, name="tiny", vcpu=1, memory_mb=256,
                                    boot_image=image, hypervisor="qemu", restart_policy="on-crash")  # fmt: skip
    pk = (
        client_for(member)
        .post("/api/v1/vms/", {"name": "phoenix", "project": project.pk, "template": tpl.pk}, format="json")
        .json()[0]["id"]
    )
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    marker = f"NEPHELE-MARKER vm-{pk}"
    try:
        wait_for(lambda: marker in _serial(vm), timeout=180, interval=1)
        pid = int(Path(f"/run/libvirt/qemu/{vm.domain_name}.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: Event.objects.filter(type="virtualmachine.crashed", object_id=str(pk)).exists(), timeout=60)
        wait_for(lambda: Event.objects.filter(type="virtualmachine.restarted", object_id=str(pk)).exists(), timeout=60)
        wait_for(lambda: _serial(vm).count(marker) >= 2, timeout=180, interval=1)
        assert VirtualMachine.objects.get(pk=pk).state == S.RUNNING
        story = list(
            Event.objects.filter(object_id=str(pk), object_type="virtualmachine")
            .order_by("pk")
            .values_list("type", flat=True)
        )
        i = story.index("virtualmachine.crashed")
        assert story[i:].count("virtualmachine.restarted") == 1 and story[-1] == "virtualmachine.state.RUNNING"
    finally:
        client_for(member).post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state in (S.DONE, S.EPILOG_FAILURE), timeout=90)
