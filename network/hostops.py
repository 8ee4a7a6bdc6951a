"""Host-side network provisioning, run by the agent (no ORM): bridges, VXLAN, nftables."""

from __future__ import annotations

from compute.drivers.base import DomainSpec


def plug_nics(uri: str, domain: DomainSpec) -> None:
    """Before boot (PROLOG): make sure each NIC's network exists on this host. Idempotent."""


def unplug_nics(uri: str, domain: DomainSpec) -> None:
    """After the domain is gone (EPILOG): clean up networks no NIC on this host uses. Idempotent."""
