"""Proof by traffic: the Linux driver in network namespaces the test creates (and always deletes).

Two "hosts" (namespaces joined by a veth underlay) and "VM" endpoints (namespaces whose veth
end, named like the NIC's tap, sits in a host namespace and is plugged by the driver). The
plans come from the real services (networks, NICs, security groups, public IPs) through
``network.vmnics.port_plan``; traffic is a tiny Python TCP/UDP client and server run with
``ip netns exec``, every wait bounded. No packet leaves these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from compute import services as compute
from network.drivers.base import get_driver
from network.models import HostNetwork
from network.services import hosts, nics, publicips, secgroups
from network.tasks import repair
from network.vmnics import port_plan

from .factories import make_network

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HELPER = textwrap.dedent(
    """
    import socket, sys
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    src = sys.argv[4] if len(sys.argv) > 4 else ""
    if mode == "listen":   # accept connections until killed, answer each with "ok"
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port)); s.listen(8); print("ready", flush=True)
        while True:
            c, _ = s.accept(); c.sendall(b"ok"); c.close()
    if mode == "connect":
        s = socket.socket(); s.settimeout(3)
        try:
            s.connect((host, port)); sys.exit(0 if s.recv(2) == b"ok" else 1)
        except OSError:
            sys.exit(1)
    if mode == "ping":  # one ICMP echo over a raw socket; exit 0 on a reply within 2 s
        import os, struct, time
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(2)
        ident = os.getpid() & 0xFFFF
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"nephele!"
        csum = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
        csum = (csum >> 16) + (csum & 0xFFFF); csum = ~(csum + (csum >> 16)) & 0xFFFF
        s.sendto(hdr[:2] + struct.pack("!H", csum) + hdr[4:], (host, 0))
        end = time.time() + 2
        while time.time() < end:
            try:
                data, addr = s.recvfrom(256)
            except OSError:
                break
            if addr[0] == host and data[20] == 0 and struct.unpack("!H", data[24:26])[0] == ident:
                sys.exit(0)
        sys.exit(1)
    if mode == "udprecv":  # print the first datagram's payload, or nothing after 3 s
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port)); s.settimeout(3)
        print("ready", flush=True)
        try:
            print(s.recv(64).decode(), flush=True)
        except OSError:
            print("none", flush=True)
    if mode == "udpsend":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: send from an address we do not own
        s.bind((src, 0)); s.sendto(src.encode(), (host, port))
    """
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=check)


def nsx(ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


class Lab:
    """Namespaces of one test, named with a random suffix, deleted at the end."""

    def __init__(self, tmp: Any) -> None:
        self.tag = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.helper = str(tmp / "nethelper.py")
        with open(self.helper, "w") as f:
            f.write(HELPER)

    def ns(self, role: str) -> str:
        name = f"nph{role}-{self.tag}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        nsx(name, "ip", "link", "set", "lo", "up", check=True)
        return name

    def veth(self, a_ns: str, a: str, b_ns: str, b: str) -> None:
        tmp_a, tmp_b = f"va{secrets.token_hex(4)}", f"vb{secrets.token_hex(4)}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", a_ns, "name", a)
        sh("ip", "link", "set", tmp_b, "netns", b_ns, "name", b)
        nsx(a_ns, "ip", "link", "set", a, "up", check=True)
        nsx(b_ns, "ip", "link", "set", b, "up", check=True)

    def vm(self, host_ns: str, nic: Any, prefix: int = 24, gateway: str = "") -> str:
        """A VM endpoint: eth0 with the NIC's MAC and address; its peer is the NIC's tap on the host."""
        ns = self.ns(f"v{nic.pk}")
        self.veth(ns, "eth0", host_ns, nic.tap)
        nsx(ns, "ip", "link", "set", "eth0", "address", nic.mac, check=True)
        nsx(ns, "ip", "addr", "add", f"{nic.ipv4}/{prefix}", "dev", "eth0", check=True)
        if gateway:
            nsx(ns, "ip", "route", "add", "default", "via", gateway, check=True)
        return ns

    def listen(self, ns: str, port: int, mode: str = "listen", host: str = "0.0.0.0") -> subprocess.Popen[str]:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, self.helper, mode, host, str(port)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    def connects(self, ns: str, host: str, port: int) -> bool:
        return nsx(ns, sys.executable, self.helper, "connect", host, str(port)).returncode == 0

    def pings(self, ns: str, addr: str) -> bool:
        return nsx(ns, sys.executable, self.helper, "ping", addr, "0").returncode == 0

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
        from network.drivers.linux import STATE_DIR

        for name in self.namespaces:  # DHCP servers the driver started in these namespaces
            for pidfile in (STATE_DIR / name).glob("*/udhcpd.pid"):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            shutil.rmtree(STATE_DIR / name, ignore_errors=True)
        for name in self.namespaces:
            if not os.environ.get("NPH_KEEP_NETNS"):  # debugging aid: keep them to look inside
                sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def lab(tmp_path: Any) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def two_hosts(lab: Lab, make_sim_host: Any, admin_user: Any) -> tuple[Any, Any]:
    """Hosts h1, h2 (namespaces) joined by an underlay 10.99.0.0/24; network settings registered."""
    out = []
    names = [lab.ns("h1"), lab.ns("h2")]
    lab.veth(names[0], "underlay", names[1], "underlay")
    for i, ns in enumerate(names, start=1):
        nsx(ns, "ip", "addr", "add", f"10.99.0.{i}/24", "dev", "underlay", check=True)
        host = make_sim_host(f"nh{i}-{lab.tag}")
        hosts.set_host_network(admin_user, host=host.pk, underlay_ip=f"10.99.0.{i}", netns=ns)
        out.append(host)
    return out[0], out[1]


def _nic(member: Any, project: Any, template: Any, net: Any, name: str, **kw: Any) -> Any:
    (vm,) = compute.create_vms(member, project=project, template=template, name=name, hold=True)
    return nics.attach_nic(member, vm.pk, network=net.pk, **kw)


def _plug(host: Any, nic: Any) -> None:
    nic.refresh_from_db()
    plan = port_plan(nic, host)
    assert plan is not None
    get_driver("linux", plan.target).plug_port(plan)


def test_isolation_across_hosts(lab: Lab, two_hosts: Any, member: Any, project: Any, template: Any,
                                other_tenant: Any, admin_user: Any) -> None:  # fmt: skip
    """Same network across hosts: reachable. Another network with the same CIDR: not."""
    h1, h2 = two_hosts
    other_project = other_tenant.memberships.first().project
    from tests.factories import VMTemplateFactory

    other_template = VMTemplateFactory(project=other_project, owner=admin_user, vcpu=1, memory_mb=256)
    net1 = make_network(member, project, "blue", "10.0.0.0/24")
    net2 = make_network(other_tenant, other_project, "red", "10.0.0.0/24")
    a = _nic(member, project, template, net1, "a")  # 10.0.0.2 on h1
    b = _nic(member, project, template, net1, "b")  # 10.0.0.3 on h2
    c = _nic(other_tenant, other_project, other_template, net2, "c", fixed_ip="10.0.0.9")  # red, on h2
    d = _nic(other_tenant, other_project, other_template, net2, "d")  # red 10.0.0.2, on h1
    ns = {}
    for host, nic in ((h1, a), (h2, b), (h2, c), (h1, d)):
        ns[nic.pk] = lab.vm(HostNetwork.objects.get(host=host).netns, nic)
        _plug(host, nic)
    assert lab.pings(ns[a.pk], b.ipv4), "same network, two hosts: must reach"
    assert lab.pings(ns[d.pk], c.ipv4), "the red network works across hosts too"
    assert not lab.pings(ns[a.pk], c.ipv4), "a blue VM must not reach a red VM with the same CIDR"
    assert not lab.pings(ns[b.pk], "10.0.0.9")
    # the drift check finds nothing placed in the DB on these hosts and removes what it finds
    assert get_driver("linux", port_plan(a, h1).target).segment_state(net1.bridge) is not None


def test_security_group_and_anti_spoofing(lab: Lab, two_hosts: Any, member: Any, project: Any,
                                          template: Any) -> None:  # fmt: skip
    h1, h2 = two_hosts
    net = make_network(member, project, "blue", "10.0.0.0/24")
    a = _nic(member, project, template, net, "a")  # 10.0.0.2, h1
    e = _nic(member, project, template, net, "e")  # 10.0.0.3, h1
    ssh = secgroups.create_group(member, project=project, name="ssh")
    secgroups.add_rule(member, ssh.pk, protocol="tcp", port_min=22, port_max=22, cidr=f"{a.ipv4}/32")
    b = _nic(member, project, template, net, "b", security_groups=[ssh.pk])  # 10.0.0.4, h2
    opened = secgroups.create_group(member, project=project, name="open")
    secgroups.add_rule(member, opened.pk, protocol="udp", cidr="0.0.0.0/0")
    t = _nic(member, project, template, net, "t", security_groups=[opened.pk])  # 10.0.0.5, h2
    ns = {}
    for host, nic in ((h1, a), (h1, e), (h2, b), (h2, t)):
        ns[nic.pk] = lab.vm(HostNetwork.objects.get(host=host).netns, nic)
        _plug(host, nic)
    lab.listen(ns[b.pk], 22)
    lab.listen(ns[b.pk], 23)
    assert lab.connects(ns[a.pk], b.ipv4, 22), "TCP 22 from the allowed CIDR passes"
    assert not lab.connects(ns[a.pk], b.ipv4, 23), "another port is closed"
    assert not lab.connects(ns[e.pk], b.ipv4, 22), "another source is refused"
    assert not lab.pings(ns[a.pk], b.ipv4), "ICMP is not allowed by the group"

    # anti-spoofing: e may send UDP to t from its own address, not from a forged one
    nsx(ns[e.pk], "ip", "neigh", "replace", t.ipv4, "lladdr", t.mac, "dev", "eth0", check=True)
    nsx(ns[e.pk], "ip", "addr", "add", "10.0.0.77/32", "dev", "eth0", check=True)  # the forged source
    for src, expected in ((e.ipv4, e.ipv4), ("10.0.0.77", "none")):
        recv = lab.listen(ns[t.pk], 5000, mode="udprecv")
        nsx(ns[e.pk], sys.executable, lab.helper, "udpsend", t.ipv4, "5000", src, check=True)
        assert recv.stdout is not None
        assert recv.stdout.readline().strip() == expected, src


def test_public_ip_reaches_vm_through_nat(lab: Lab, two_hosts: Any, member: Any, project: Any, template: Any,
                                          admin_user: Any) -> None:  # fmt: skip
    h1, _h2 = two_hosts
    hn = HostNetwork.objects.get(host=h1)
    outside = lab.ns("out")
    lab.veth(hn.netns, "public0", outside, "eth0")
    nsx(hn.netns, "ip", "addr", "add", "203.0.113.1/24", "dev", "public0", check=True)
    nsx(outside, "ip", "addr", "add", "203.0.113.254/24", "dev", "eth0", check=True)
    hosts.set_host_network(admin_user, host=h1.pk, underlay_ip=hn.underlay_ip, netns=hn.netns,
                           public_interface="public0")  # fmt: skip
    net = make_network(member, project, "blue", "10.0.0.0/24", gateway4="10.0.0.1")
    web = secgroups.create_group(member, project=project, name="web")
    secgroups.add_rule(member, web.pk, protocol="tcp", port_min=8080, port_max=8080, cidr="0.0.0.0/0")
    a = _nic(member, project, template, net, "a", security_groups=[web.pk])
    publicips.create_pool(admin_user, name="pub", cidr="203.0.113.0/24", first="203.0.113.10", last="203.0.113.20")
    vm_ns = lab.vm(hn.netns, a, gateway="10.0.0.1")
    lab.listen(vm_ns, 8080)
    _plug(h1, a)
    assert not lab.connects(outside, "203.0.113.10", 8080), "no public IP yet"
    pip = publicips.allocate(member, project=project)
    publicips.associate(member, pip.pk, nic_id=a.pk)
    _plug(h1, a)
    assert lab.connects(outside, pip.address, 8080), "the public IP reaches the VM through 1:1 NAT"
    assert not lab.connects(outside, pip.address, 8081), "the security group still applies"


def test_segment_life_cycle_and_drift_repair(lab: Lab, two_hosts: Any, member: Any, project: Any,
                                             template: Any) -> None:  # fmt: skip
    """Provisioned with the first port, peers repaired, removed with the last port."""
    h1, h2 = two_hosts
    net = make_network(member, project, "blue", "10.0.0.0/24")
    a = _nic(member, project, template, net, "a")
    lab.vm(HostNetwork.objects.get(host=h1).netns, a)
    plan = port_plan(a, h1)
    drv = get_driver("linux", plan.target)
    drv.plug_port(plan)
    drv.plug_port(plan)  # idempotent
    state = drv.segment_state(net.bridge)
    assert state is not None and state.vni == net.vni and state.peers == ("10.99.0.2",) and a.tap in state.ports
    assert a.tap in drv.port_tables()
    # drift: a peer removed by hand comes back with the next apply
    nsx(plan.target.netns, "bridge", "fdb", "del", "00:00:00:00:00:00", "dev", plan.segment.vxlan, "dst", "10.99.0.2")
    assert drv.segment_state(net.bridge).peers == ()
    drv.plug_port(plan)
    assert drv.segment_state(net.bridge).peers == ("10.99.0.2",)
    # the repair task removes what no placed NIC needs (this VM is on no host in the database)
    assert repair(h1.pk)["removed"] >= 1
    assert drv.segment_state(net.bridge) is None and a.tap not in drv.port_tables()
