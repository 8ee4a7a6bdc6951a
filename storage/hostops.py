"""Host-side disk preparation, run by the agent (no ORM): overlays, copies, context seeds."""

from __future__ import annotations

from compute.drivers.base import DomainSpec


def prepare_disks(uri: str, domain: DomainSpec) -> None:
    """Before boot (PROLOG): create the files ``domain.disks`` need. Idempotent."""


def release_disks(uri: str, domain: DomainSpec, *, terminate: bool) -> None:
    """After the domain is gone (EPILOG): remove what was only for this VM. Idempotent."""
