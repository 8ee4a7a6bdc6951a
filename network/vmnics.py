"""The network manager's part of a VM's domain: its NICs.

``nic_specs(vm)`` is called by ``compute.services.vms.domain_spec`` (ORM side);
``network.hostops`` plugs and unplugs them on the host (agent side, no ORM).
"""

from __future__ import annotations

from typing import Any

from compute.drivers.base import NicSpec


def nic_specs(vm: Any) -> list[NicSpec]:
    """The NICs of ``vm`` (none until the network manager lands)."""
    return []


def network_config(vm: Any) -> dict[str, Any]:
    """cloud-init network configuration (version 2) for ``vm``'s NICs, matched by MAC; {} when it has none."""
    return {}
