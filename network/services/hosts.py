"""Services for the hosts' network settings (administrators)."""

from __future__ import annotations

import ipaddress

from django.db import transaction

from compute.models import Host
from portal.errors import InvalidInput, NotFound
from tenants.querysets import Actor

from ..models import HostNetwork
from .common import audit, lock, require_admin


@transaction.atomic
def set_host_network(
    actor: Actor, *, host: int, underlay_ip: str, netns: str = "", public_interface: str = "", uplink: str = ""
) -> HostNetwork:
    """Give a host its VXLAN underlay address, namespace and VLAN uplink: its VMs' NICs get provisioned there."""
    require_admin(actor, "configure host networking")
    h = Host.objects.filter(pk=host).first()
    if h is None:
        raise NotFound("host not found", field="host")
    try:
        ipaddress.ip_address(underlay_ip)
    except ValueError:
        raise InvalidInput(f"underlay_ip must be an IP address, not {underlay_ip!r}", field="underlay_ip") from None
    if len(public_interface) > 15:
        raise InvalidInput("public_interface is at most 15 characters", field="public_interface")
    if len(uplink) > 15 or any(c.isspace() or c == "/" for c in uplink):
        raise InvalidInput("uplink is an interface name of at most 15 characters, no spaces or '/'", field="uplink")
    hn, _ = HostNetwork.objects.update_or_create(
        host=h,
        defaults={"underlay_ip": underlay_ip, "netns": netns, "public_interface": public_interface, "uplink": uplink},
    )
    audit(actor, h, "set_network", underlay_ip=underlay_ip, netns=netns, uplink=uplink)
    return hn


@transaction.atomic
def delete_host_network(actor: Actor, host_network_id: int) -> None:
    """Stop provisioning networks on the host."""
    require_admin(actor, "configure host networking")
    hn = lock(HostNetwork, actor, host_network_id, what="host network")
    audit(actor, hn.host, "unset_network")
    hn.delete()
