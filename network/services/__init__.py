"""Network services: the only writers of network state (CONVENTIONS §2)."""

from . import hosts, ipam, networks, nics, publicips, secgroups

__all__ = ["hosts", "ipam", "networks", "nics", "publicips", "secgroups"]
