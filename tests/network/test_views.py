"""Network pages: they render the project's objects, and changes post through one action
endpoint whose refusals come back as a message naming the field (nothing changed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from compute import services as compute
from network.models import SecurityGroupRule, VirtualNetwork
from network.services import nics, publicips, secgroups

from .factories import make_network, vni_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(member: Any) -> Client:
    c = Client()
    c.force_login(member)
    return c


def _post(client: Client, **body: Any) -> Any:
    return client.post("/network/action/", body, follow=True)


def test_create_network_page_and_usage_bar(browser: Client, project: Any) -> None:
    vni_pool()
    resp = _post(browser, what="network-create", name="blue", cidr4="10.0.0.0/24", gateway4="10.0.0.1")
    assert "Network blue created (VNI 1000)." in resp.content.decode()
    page = browser.get("/network/").content.decode()
    assert "blue" in page and "10.0.0.0/24" in page and 'aria-label="leases used"' in page
    # the project's network quota: one used, no limit set
    assert re.search(r'data-testid="quota-networks">\s*1 / ∞', page), "unlimited quota shown as ∞"


def test_refusal_is_a_message_and_changes_nothing(browser: Client, member: Any, project: Any) -> None:
    make_network(member, project, "blue", "10.0.0.0/16")
    resp = _post(browser, what="network-create", name="red", cidr4="10.0.1.0/24")
    assert "cidr4: cidr4 10.0.1.0/24 overlaps network blue" in resp.content.decode()
    assert VirtualNetwork.objects.count() == 1


def test_rule_editor(browser: Client, member: Any, project: Any) -> None:
    g = secgroups.create_group(member, project=project, name="web")
    resp = _post(browser, what="rule-add", group=g.pk, protocol="tcp", port_min=8080, port_max=80, cidr="0.0.0.0/0")
    assert "invalid port range" in resp.content.decode() and not SecurityGroupRule.objects.exists()
    _post(browser, what="rule-add", group=g.pk, protocol="tcp", port_min=80, port_max=80, cidr="0.0.0.0/0")
    page = browser.get("/network/security-groups/").content.decode()
    assert "Add rule" in page and "0.0.0.0/0" in page and SecurityGroupRule.objects.count() == 1


def test_vm_page_lists_nics_and_topology_draws_them(browser: Client, member: Any, project: Any, template: Any,
                                                   admin_user: Any) -> None:  # fmt: skip
    net = make_network(member, project, "blue", "10.0.0.0/24")
    (vm,) = compute.create_vms(member, project=project, template=template, name="web1", hold=True)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    publicips.create_pool(admin_user, name="pub", cidr="203.0.113.0/24", first="203.0.113.5", last="203.0.113.9")
    pip = publicips.allocate(member, project=project)
    publicips.associate(member, pip.pk, nic_id=nic.pk)
    page = browser.get(f"/compute/vms/{vm.pk}/").content.decode()
    assert "Network interfaces" in page and nic.ipv4 in page and nic.mac in page
    topo = browser.get("/network/topology/").content.decode()
    assert "<svg" in topo and "web1" in topo and "203.0.113.5" in topo and "blue" in topo
    assert "203.0.113.5" in browser.get("/network/public-ips/").content.decode()
    resp = _post(browser, what="nic-detach", id=nic.pk)
    assert "NIC detached." in resp.content.decode() and not vm.nics.exists()
