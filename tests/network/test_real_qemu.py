"""The real QEMU host (qemu:///system): a guest on a virtual network gets its address by DHCP
from the network's bridge and answers ping from another endpoint on that network.

The bridge lives in this machine's own namespace (libvirt puts the guest's tap there); it has
no uplink and a unique name, and is removed when the last port leaves (and by the test, even on
failure). The other endpoint is a namespace the test creates, plugged as a second NIC of the
same network, so the default security group (members talk to each other) lets it through.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as dj_settings

from compute import services as compute
from compute.models import BootImage, Host, VirtualMachine, VMTemplate
from compute.states import VMState as S
from network.drivers.base import get_driver
from network.models import VniPool
from network.services import hosts, networks, nics
from network.vmnics import port_plan
from tests.conftest import wait_for
from tests.integration.test_real_host import GUEST, _libvirtd_up

from .test_traffic import Lab, nsx, sh

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Any) -> Any:
    if not (GUEST / "vmlinuz").exists() or not _libvirtd_up():
        pytest.skip("libvirtd or the test guest is missing: run `make test` (it builds and starts both)")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _serial(vm: VirtualMachine) -> str:
    path = Path(dj_settings.NEPHELE_STATE_DIR) / "consoles" / f"{vm.domain_name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_guest_gets_dhcp_address_and_answers_ping(lab: Lab, agent: Any, admin_user: Any, member: Any,
                                                  project: Any) -> None:  # fmt: skip
    host = compute.register_host(admin_user, name=f"netqemu-{lab.tag}", uri="qemu:///system", hypervisor="qemu")
    wait_for(lambda: Host.objects.filter(pk=host.pk, state="MONITORED").exists(), timeout=60)
    hosts.set_host_network(admin_user, host=host.pk, underlay_ip="127.0.0.1")
    vni = 9000 + secrets.randbelow(900)
    VniPool.objects.create(name=f"q{lab.tag}", first=vni, last=vni)
    octet = 100 + secrets.randbelow(150)
    net = networks.create_network(member, project=project, name="dhcp", cidr4=f"10.213.{octet}.0/24",
                                  gateway4=f"10.213.{octet}.1")  # fmt: skip
    image = BootImage.objects.create(
        project=project, owner=admin_user, name="tiny", kind="kernel", public=True, kernel_path=str(GUEST / "vmlinuz"),
        initrd_path=str(GUEST / "initrd.img"), cmdline="console=ttyS0 quiet nephele.dhcp=1 nephele.marker=vm-{vm_name}",
    )  # fmt: skip
    tpl = VMTemplate.objects.create(project=project, owner=admin_user, name="tiny", vcpu=1, memory_mb=256,
                                    boot_image=image, hypervisor="qemu")  # fmt: skip
    nics.add_template_nic(member, tpl.pk, network=net.pk)
    (holder,) = compute.create_vms(member, project=project, template=VMTemplate.objects.create(
        project=project, owner=admin_user, name="holder", vcpu=1, memory_mb=64), name="probe", hold=True)  # fmt: skip
    probe = nics.attach_nic(member, holder.pk, network=net.pk)
    (vm,) = compute.create_vms(member, project=project, template=tpl, name="guest")
    guest_ip = vm.nics.get().ipv4
    drv = get_driver("linux", port_plan(probe, host).target)
    try:
        vm = wait_for(lambda: VirtualMachine.objects.filter(pk=vm.pk, state=S.RUNNING).first(), timeout=180)
        # the other endpoint: a namespace whose veth peer is the probe NIC's tap, on this host's bridge
        ns = lab.ns("probe")
        peer = f"vq{lab.tag}"
        sh("ip", "link", "add", probe.tap, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", ns)
        nsx(ns, "ip", "link", "set", peer, "name", "eth0", check=True)
        nsx(ns, "ip", "link", "set", "eth0", "up", check=True)
        nsx(ns, "ip", "link", "set", "eth0", "address", probe.mac, check=True)
        nsx(ns, "ip", "addr", "add", f"{probe.ipv4}/24", "dev", "eth0", check=True)
        drv.plug_port(port_plan(probe, host))
        wait_for(lambda: f"NEPHELE-DHCP iface=eth0 ip={guest_ip}/24" in _serial(vm), timeout=240, interval=1)
        assert wait_for(lambda: lab.pings(ns, guest_ip), timeout=60, interval=1)
        assert not lab.pings(ns, f"10.213.{octet}.250"), "nothing else answers on the network"
        # NIC hotplug: a second interface appears in the running domain
        hot = nics.attach_nic(member, vm.pk, network=net.pk)
        wait_for(lambda: hot.mac in sh("virsh", "-c", "qemu:///system", "domiflist", vm.domain_name).stdout,
                 timeout=60, interval=1)  # fmt: skip
        nics.detach_nic(member, hot.pk)
        assert not vm.nics.filter(pk=hot.pk).exists() and net.leases.count() == 2
    finally:
        compute.perform_action(member, vm.pk, compute.ActionRequest(action="terminate", hard=True))
        wait_for(lambda: VirtualMachine.objects.get(pk=vm.pk).state in (S.DONE, S.EPILOG_FAILURE), timeout=120)
        drv.unplug_port(probe.tap)
        sh("ip", "link", "del", probe.tap, check=False)
        drv.remove_segment(net.bridge)
    assert net.bridge not in drv.segments()
