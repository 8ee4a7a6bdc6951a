"""Factories and helpers for network tests (objects made through the services)."""

from __future__ import annotations

from typing import Any

from network.models import VniPool
from network.services import networks


def vni_pool(first: int = 1000, last: int = 1999) -> VniPool:
    return VniPool.objects.get_or_create(name=f"pool{first}", defaults={"first": first, "last": last})[0]


def make_network(actor: Any, project: Any, name: str = "net", cidr4: str = "10.0.0.0/24", **kw: Any) -> Any:
    if not VniPool.objects.exists():
        vni_pool()
    kw.setdefault("gateway4", str(cidr4).rsplit(".", 1)[0] + ".1" if cidr4 else None)
    return networks.create_network(actor, project=project, name=name, cidr4=cidr4, **kw)


def vlan_pool(first: int = 100, last: int = 199) -> VniPool:
    """An 802.1Q VLAN id pool (made directly, as ``vni_pool``; the service is tested on its own)."""
    return VniPool.objects.get_or_create(name=f"vlan{first}", defaults={"kind": "vlan", "first": first, "last": last})[
        0
    ]
