"""The Linux driver's VLAN segments in namespaces the test creates (and always deletes).

On a kernel without 802.1Q (``vlan`` links unknown, as on the CI machine) creating a VLAN
segment must fail with a ``NetworkDriverError`` naming 802.1Q; the traffic test needs a kernel
that has it and is skipped otherwise. The capability is detected, never assumed: a scratch
namespace with a veth tries to grow a vlan sub-interface.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from network.drivers.base import HostTarget, NetworkDriverError, SegmentPlan, get_driver
from network.models import HostNetwork
from network.services import hosts
from network.vmnics import port_plan

from .factories import make_network, vlan_pool
from .test_traffic import Lab, _nic, _plug, nsx, sh

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@functools.cache
def has_8021q() -> bool:
    """Whether this kernel makes vlan links (tried in a scratch namespace, removed afterwards)."""
    name = f"nphq-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", name)
    try:
        veth = nsx(name, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
        assert veth.returncode == 0, veth.stderr  # veth must work: otherwise the probe proves nothing
        return nsx(name, "ip", "link", "add", "link", "u0", "name", "u0.7", "type", "vlan", "id", "7").returncode == 0
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def vlab(tmp_path: Any) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _trunk_host(lab: Lab) -> str:
    """A host namespace whose uplink 'trunk' is one end of a veth (the other end in a peer namespace)."""
    h, peer = lab.ns("h1"), lab.ns("sw")
    lab.veth(h, "trunk", peer, "port")
    return h


def test_vlan_segment_fails_clearly_without_8021q(vlab: Lab) -> None:
    if has_8021q():
        pytest.skip("this kernel has 802.1Q: test_vlan_traffic covers VLAN segments")
    ns = _trunk_host(vlab)
    drv = get_driver("linux", HostTarget(netns=ns, uplink="trunk"))
    seg = SegmentPlan(bridge="nphbv3001", vni=3001, isolation="vlan")
    with pytest.raises(NetworkDriverError, match="802.1Q") as exc:
        drv.ensure_segment(seg)
    assert "nphv3001" in str(exc.value) and "trunk" in str(exc.value)
    assert drv.prune(seg.bridge) is True  # the half-made segment (its bridge) is cleaned up
    assert drv.segment_state(seg.bridge) is None


def test_vlan_segment_with_a_missing_uplink(vlab: Lab) -> None:
    ns = vlab.ns("h1")
    drv = get_driver("linux", HostTarget(netns=ns, uplink="nosuch0"))
    with pytest.raises(NetworkDriverError, match="uplink nosuch0 .* missing"):
        drv.ensure_segment(SegmentPlan(bridge="nphbv5", vni=5, isolation="vlan"))


def test_vlan_traffic(vlab: Lab, make_sim_host: Any, admin_user: Any, member: Any, project: Any, template: Any,
                      other_tenant: Any) -> None:  # fmt: skip
    """Two hosts trunked by a veth: a VLAN network reaches across them, another VLAN does not;
    plugging twice changes nothing; the sub-interface goes with the last port."""
    if not has_8021q():
        pytest.skip("no 802.1Q in this kernel")
    h1, h2 = vlab.ns("h1"), vlab.ns("h2")
    vlab.veth(h1, "trunk", h2, "trunk")
    hs = []
    for i, ns in enumerate((h1, h2), start=1):
        host = make_sim_host(f"qh{i}-{vlab.tag}")
        hosts.set_host_network(admin_user, host=host.pk, underlay_ip=f"10.98.0.{i}", netns=ns, uplink="trunk")
        hs.append(host)
    vlan_pool(3000, 3009)
    blue = make_network(member, project, "blue", "10.60.0.0/24", isolation="vlan")
    other_project = other_tenant.memberships.first().project
    from tests.factories import VMTemplateFactory

    other_template = VMTemplateFactory(project=other_project, owner=admin_user, vcpu=1, memory_mb=256)
    red = make_network(other_tenant, other_project, "red", "10.60.0.0/24", isolation="vlan")  # same CIDR
    a = _nic(member, project, template, blue, "a")
    b = _nic(member, project, template, blue, "b")
    c = _nic(other_tenant, other_project, other_template, red, "c", fixed_ip="10.60.0.9")
    ns = {}
    for host, nic in ((hs[0], a), (hs[1], b), (hs[1], c)):
        ns[nic.pk] = vlab.vm(HostNetwork.objects.get(host=host).netns, nic)
        _plug(host, nic)
    _plug(hs[0], a)  # idempotent
    assert vlab.pings(ns[a.pk], b.ipv4), "same VLAN across the trunk: must reach"
    assert red.vni != blue.vni
    assert not vlab.pings(ns[a.pk], c.ipv4), "a VM of another VLAN with the same CIDR must not be reachable"
    drv = get_driver("linux", port_plan(a, hs[0]).target)
    state = drv.segment_state(blue.bridge)
    assert state is not None and state.vni == blue.vni and a.tap in state.ports
    drv.unplug_port(a.tap)
    assert drv.prune(blue.bridge) is True and drv.segment_state(blue.bridge) is None
    assert nsx(h1, "ip", "link", "show", f"nphv{blue.vni}").returncode != 0, "the sub-interface is gone"
