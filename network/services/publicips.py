"""Services for public IP pools and a project's public IPs (allocate, associate = 1:1 NAT,
disassociate, release)."""

from __future__ import annotations

import ipaddress

from django.contrib.auth.models import User
from django.db import transaction

from portal.errors import Conflict, InvalidInput, NotFound
from tenants import quotas
from tenants.models import Project
from tenants.querysets import Actor

from ..models import PublicIP, PublicIPPool, VMNic
from .common import audit, check_name, lock, managed_project, parse_ip4, parse_net4, require_admin


@transaction.atomic
def create_pool(actor: Actor, *, name: str, cidr: str, first: str, last: str) -> PublicIPPool:
    """Make the addresses first..last of ``cidr`` available as public IPs."""
    require_admin(actor, "define public IP pools")
    check_name(name)
    net = parse_net4(cidr, "cidr")
    a, b = parse_ip4(first, "first"), parse_ip4(last, "last")
    for addr, fld in ((a, "first"), (b, "last")):
        if addr not in net:
            raise InvalidInput(f"{fld} {addr} is outside {net}", field=fld)
    if int(a) > int(b):
        raise InvalidInput(f"first {a} comes after last {b}", field="last")
    for other in PublicIPPool.objects.select_for_update():
        lo, hi = int(ipaddress.IPv4Address(other.first)), int(ipaddress.IPv4Address(other.last))
        if int(a) <= hi and lo <= int(b):
            raise InvalidInput(f"overlaps public IP pool {other.name}", field="first")
    if PublicIPPool.objects.filter(name=name).exists():
        raise Conflict(f"a public IP pool named {name!r} exists already", field="name")
    pool = PublicIPPool.objects.create(name=name, cidr=str(net), first=str(a), last=str(b))
    audit(actor, pool, "create", first=str(a), last=str(b))
    return pool


@transaction.atomic
def delete_pool(actor: Actor, pool_id: int) -> None:
    """Remove a pool whose addresses nobody holds."""
    require_admin(actor, "delete public IP pools")
    pool = lock(PublicIPPool, actor, pool_id, what="public IP pool")
    if pool.addresses.exists():
        raise Conflict(f"{pool.addresses.count()} addresses of pool {pool.name} are allocated", field="pool")
    audit(actor, pool, "delete")
    pool.delete()


@transaction.atomic
def allocate(actor: User, *, project: Project, pool: int | None = None, ip: str | None = None) -> PublicIP:
    """Give ``project`` the next free public address (of ``pool``, or of any pool)."""
    project = managed_project(actor, project)
    pools = PublicIPPool.objects.select_for_update().order_by("pk")
    if pool is not None:
        pools = pools.filter(pk=pool)
        if not pools.exists():
            raise NotFound("public IP pool not found", field="pool")
    pools_list = list(pools)
    if not pools_list:
        raise Conflict("no public IP pool is defined", field="pool")
    quotas.consume(project, actor, public_ips=1)
    for p in pools_list:
        used = {int(ipaddress.IPv4Address(a)) for a in p.addresses.values_list("address", flat=True)}
        lo, hi = int(ipaddress.IPv4Address(p.first)), int(ipaddress.IPv4Address(p.last))
        for a in range(lo, hi + 1):
            if a not in used:
                pip = PublicIP.objects.create(pool=p, address=str(ipaddress.IPv4Address(a)), project=project,
                                              owner=actor)  # fmt: skip
                audit(actor, pip, "allocate", ip=ip, pool=p.pk)
                return pip
    raise Conflict("every public IP pool is exhausted", field="pool")


@transaction.atomic
def associate(actor: Actor, public_ip_id: int, *, nic_id: int, ip: str | None = None) -> PublicIP:
    """NAT the public address 1:1 to the NIC's IPv4 address."""
    pip: PublicIP = lock(PublicIP, actor, public_ip_id, what="public IP")
    nic = VMNic.objects.restrict(actor, "manage").select_related("vm").filter(pk=nic_id).first()
    if nic is None or nic.vm.project_id != pip.project_id:
        raise NotFound("NIC not found in the public IP's project", field="nic")
    if pip.nic_id is not None and pip.nic_id != nic.pk:
        raise Conflict(f"{pip.address} is associated with another NIC; disassociate it first", field="nic")
    if PublicIP.objects.filter(nic=nic).exclude(pk=pip.pk).exists():
        raise Conflict("the NIC has a public IP already", field="nic")
    if not nic.ipv4:
        raise InvalidInput("the NIC has no IPv4 address to NAT to", field="nic")
    pip.nic = nic
    pip.save()
    audit(actor, pip, "associate", ip=ip, nic=nic.pk, private=nic.ipv4)
    _refresh(nic)
    return pip


@transaction.atomic
def disassociate(actor: Actor, public_ip_id: int, *, ip: str | None = None) -> PublicIP:
    """Stop NAT'ing the public address."""
    pip: PublicIP = lock(PublicIP, actor, public_ip_id, what="public IP")
    nic = pip.nic
    if nic is None:
        return pip
    pip.nic = None
    pip.save()
    audit(actor, pip, "disassociate", ip=ip, nic=nic.pk)
    _refresh(nic)
    return pip


@transaction.atomic
def release(actor: Actor, public_ip_id: int, *, ip: str | None = None) -> None:
    """Give the address back to its pool (disassociating it first)."""
    pip: PublicIP = lock(PublicIP, actor, public_ip_id, what="public IP")
    nic = pip.nic
    quotas.release(pip.project, pip.owner, public_ips=1)
    audit(actor, pip, "release", ip=ip)
    pip.delete()
    if nic is not None:
        _refresh(nic)


def _refresh(nic: VMNic) -> None:
    from .nics import refresh_nic

    refresh_nic(nic)
