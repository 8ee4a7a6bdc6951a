"""IPAM and the VNI / VLAN pools under concurrent requests on PostgreSQL: never one address or one
VNI (VLAN id) twice (the network row and the pool rows are locked; the unique constraints back it up)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from compute import services as compute
from network.models import Lease, VirtualNetwork
from network.services import networks, nics
from portal.errors import ServiceError
from tests.factories import ProjectFactory

from .factories import make_network, vlan_pool, vni_pool

pytestmark = pytest.mark.django_db(transaction=True)


def _race(fns: list[Callable[[], Any]]) -> tuple[list[Any], list[Exception]]:
    barrier = threading.Barrier(len(fns))
    results: list[Any] = []
    errors: list[Exception] = []

    def run(fn: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(fn())
        except ServiceError as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def test_concurrent_leases_never_share_an_address(member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project, "race", "10.0.0.0/28")  # 13 leasable (.2-.14)
    vms = [compute.create_vms(member, project=project, template=template, name=f"v{i}", hold=True)[0]
           for i in range(16)]  # fmt: skip
    results, errors = _race([lambda vm=vm: nics.attach_nic(member, vm.pk, network=net.pk) for vm in vms])
    addresses = list(Lease.objects.filter(network=net).values_list("address", flat=True))
    assert len(addresses) == len(set(addresses)) == 13 == len(results)
    assert len(errors) == 3 and all("exhausted" in e.message for e in errors)


def test_concurrent_networks_never_share_a_vni(member: Any, admin_user: Any) -> None:
    vni_pool(7000, 7005)
    projects = [ProjectFactory() for _ in range(8)]
    results, errors = _race(
        [lambda p=p: networks.create_network(admin_user, project=p, name="n", cidr4="10.0.0.0/24") for p in projects]
    )
    vnis = list(VirtualNetwork.objects.values_list("vni", flat=True))
    assert len(vnis) == len(set(vnis)) == 6 == len(results)
    assert len(errors) == 2 and all("exhausted" in e.message for e in errors)


def test_concurrent_vlan_and_vxlan_networks_never_share_an_id(member: Any, admin_user: Any) -> None:
    """VLAN ids race like VNIs: 3 VLAN ids for 5 VLAN requests, racing with 3 VXLAN requests (same numbers)."""
    vlan_pool(10, 12)
    vni_pool(10, 20)
    projects = [ProjectFactory() for _ in range(8)]
    results, errors = _race(
        [lambda p=p, i=i: networks.create_network(admin_user, project=p, name="n", cidr4="10.0.0.0/24",
                                                  isolation="vlan" if i < 5 else "vxlan")
         for i, p in enumerate(projects)]
    )  # fmt: skip
    vlans = list(VirtualNetwork.objects.filter(isolation="vlan").values_list("vni", flat=True))
    vnis = list(VirtualNetwork.objects.filter(isolation="vxlan").values_list("vni", flat=True))
    assert sorted(vlans) == [10, 11, 12] and sorted(vnis) == [10, 11, 12]
    assert len(results) == 6
    assert len(errors) == 2 and all("VLAN pool is exhausted" in e.message for e in errors)
