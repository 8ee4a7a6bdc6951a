"""Services for template NICs and VM NICs: created with the VM, attached and detached later,
released when the VM is DONE. Changes that touch a running NIC re-apply its host plan after commit."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from compute.locking import lock_vm
from compute.models import VirtualMachine, VMTemplate
from portal import outbox
from portal.errors import Conflict, InvalidInput, NotFound
from tenants import quotas
from tenants.querysets import Actor

from ..models import Lease, PublicIP, Reservation, SecurityGroup, TemplateNic, VirtualNetwork, VMNic
from ..states import HOT_STATES, NIC_TABLE, NicAction
from . import ipam
from .common import audit, lock, parse_ip4
from .secgroups import default_group

MAX_NICS = 8
MAX_KBPS = 10 * 1024 * 1024  # 10 GiB/s


def _mbps(average_kbps: int) -> int:
    """The nic_mbps quota charge of a limit (KiB/s → Mbit/s, rounded up); unlimited NICs count 0."""
    return -(-average_kbps * 8 * 1024 // 1_000_000) if average_kbps else 0


def _bandwidth(average_kbps: int, peak_kbps: int, burst_kb: int) -> tuple[int, int, int]:
    for value, fld in ((average_kbps, "average_kbps"), (peak_kbps, "peak_kbps"), (burst_kb, "burst_kb")):
        if not 0 <= int(value) <= MAX_KBPS:
            raise InvalidInput(f"{fld} must be between 0 and {MAX_KBPS} (KiB/s)", field=fld)
    if peak_kbps and average_kbps and peak_kbps < average_kbps:
        raise InvalidInput("peak_kbps must not be below average_kbps", field="peak_kbps")
    return int(average_kbps), int(peak_kbps), int(burst_kb)


def _groups(actor: Actor, project_id: int, group_ids: Iterable[int] | None) -> list[SecurityGroup]:
    ids = list(group_ids or [])
    if not ids:
        return []
    qs = SecurityGroup.objects.all() if actor is None else SecurityGroup.objects.restrict(actor, "view")
    found = list(qs.filter(pk__in=ids, project_id=project_id))
    if len(found) != len(set(ids)):
        raise NotFound("security group not found in this project", field="security_groups")
    return found


def _usable_network(actor: Actor, network_id: int) -> VirtualNetwork:
    qs = VirtualNetwork.objects.all() if actor is None else VirtualNetwork.objects.restrict(actor, "view")
    if not qs.filter(pk=network_id).exists():
        raise NotFound("network not found", field="network")
    return VirtualNetwork.objects.select_for_update().get(pk=network_id)


def _new_mac() -> str:
    while True:
        mac = "02:4e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))
        if not VMNic.objects.filter(mac=mac).exists():
            return mac


# --------------------------------------------------------------------------------------------
# template NICs
# --------------------------------------------------------------------------------------------
@transaction.atomic
def add_template_nic(
    actor: Actor,
    template_id: int,
    *,
    network: int,
    fixed_ip: str | None = None,
    security_groups: Iterable[int] | None = None,
    average_kbps: int = 0,
    peak_kbps: int = 0,
    burst_kb: int = 0,
) -> TemplateNic:
    """Every VM made from the template gets this NIC."""
    template = VMTemplate.objects.restrict(actor, "manage").filter(pk=template_id).first()
    if template is None:
        raise NotFound("template not found", field="template")
    net = _usable_network(actor, network)
    if fixed_ip:
        fixed_ip = str(parse_ip4(fixed_ip, "fixed_ip"))
    bw = _bandwidth(average_kbps, peak_kbps, burst_kb)
    groups = _groups(actor, template.project_id, security_groups)
    nic = TemplateNic.objects.create(template=template, network=net, fixed_ip=fixed_ip or None, average_kbps=bw[0],
                                     peak_kbps=bw[1], burst_kb=bw[2])  # fmt: skip
    nic.security_groups.set(groups)
    audit(actor, template, "add_nic", network=net.pk)
    return nic


@transaction.atomic
def remove_template_nic(actor: Actor, template_nic_id: int) -> None:
    """VMs made from the template from now on lack this NIC."""
    nic = TemplateNic.objects.restrict(actor, "manage").select_related("template").filter(pk=template_nic_id).first()
    if nic is None:
        raise NotFound("template NIC not found")
    audit(actor, nic.template, "remove_nic", network=nic.network_id)
    nic.delete()


# --------------------------------------------------------------------------------------------
# VM NICs
# --------------------------------------------------------------------------------------------
def create_nic(
    actor: Actor,
    vm: VirtualMachine,
    *,
    network: int,
    fixed_ip: str | None = None,
    reservation: int | None = None,
    security_groups: Iterable[int] | None = None,
    average_kbps: int = 0,
    peak_kbps: int = 0,
    burst_kb: int = 0,
) -> VMNic:
    """Add a NIC with a lease to ``vm`` (inside the caller's transaction; the VM row is locked)."""
    net = _usable_network(actor, network)
    if not net.cidr4 and fixed_ip:
        raise InvalidInput(f"network {net.name} has no IPv4 subnet", field="fixed_ip")
    res = None
    if reservation is not None:
        res = Reservation.objects.filter(pk=reservation, network=net, project=vm.project).first()
        if res is None:
            raise NotFound("reservation not found for this project and network", field="reservation")
    index = len(list(vm.nics.all()))
    if index >= MAX_NICS:
        raise InvalidInput(f"a VM has at most {MAX_NICS} NICs", field="network")
    index = max([n.index for n in vm.nics.all()], default=-1) + 1
    bw = _bandwidth(average_kbps, peak_kbps, burst_kb)
    groups = _groups(actor, vm.project_id, security_groups) or [
        default_group(vm.project, actor if isinstance(actor, User) else vm.owner)
    ]
    mac = _new_mac()
    nic = VMNic.objects.create(vm=vm, network=net, index=index, mac=mac, average_kbps=bw[0], peak_kbps=bw[1],
                               burst_kb=bw[2])  # fmt: skip
    nic.security_groups.set(groups)
    if net.cidr4:
        lease = ipam.allocate(net, mac=mac, fixed_ip=fixed_ip, reservation=res, field="fixed_ip")
        lease.nic = nic
        lease.save(update_fields=["nic"])
    # Quota rows last, after the network row the lease locked (tenants/quotas.py).
    quotas.consume(vm.project, vm.owner, ip_leases=1 if net.cidr4 else 0, nic_mbps=_mbps(bw[0]))
    return nic


def _check_template_nics_usable(actor: Actor, tnics: list[TemplateNic], project_id: int | None) -> None:
    """The template's networks and security groups, checked against the VM creator's rights now
    (time of use, issue 12): a network that was made private again, or a group the creator can
    no longer see, makes no new NIC. 409 naming the template's NIC (nothing is created: the
    caller's transaction rolls back)."""
    if actor is None:  # the system: no one's rights to check
        return
    nets = {t.network_id for t in tnics}
    usable = set(VirtualNetwork.objects.restrict(actor, "view").filter(pk__in=nets).values_list("pk", flat=True))
    wanted = {g.pk for t in tnics for g in t.security_groups.all() if g.project_id == project_id}
    seen = set(SecurityGroup.objects.restrict(actor, "view").filter(pk__in=wanted).values_list("pk", flat=True))
    for i, t in enumerate(tnics):
        if t.network_id not in usable:
            raise Conflict(
                f"NIC {i} of the template uses network {t.network.name}, which is not available to you "
                "(no longer shared?)",
                field="template",
            )
        lost = [g.name for g in t.security_groups.all() if g.project_id == project_id and g.pk not in seen]
        if lost:
            raise Conflict(
                f"NIC {i} of the template uses security group {lost[0]}, which is not available to you",
                field="template",
            )


def on_vms_created(actor: Actor, vms: list[VirtualMachine], template: VMTemplate) -> None:
    """Give the new VMs the template's NICs (called by ``compute.services.create_vms``, same transaction).

    A fixed IP on a template NIC can only go to one VM: creating several is refused.
    """
    tnics = list(
        TemplateNic.objects.filter(template=template).select_related("network").prefetch_related("security_groups")
    )
    if not tnics:
        return
    _check_template_nics_usable(actor, tnics, vms[0].project_id if vms else None)
    if len(vms) > 1 and any(t.fixed_ip for t in tnics):
        raise InvalidInput("the template gives a fixed IP: create one VM at a time", field="count")
    for vm in vms:
        for t in tnics:
            # the creator must see the network (a public template may name a private one); groups
            # of another project (a shared template's) do not apply: the VM's default group does
            groups = [g.pk for g in t.security_groups.all() if g.project_id == vm.project_id]
            create_nic(actor, vm, network=t.network_id, fixed_ip=t.fixed_ip, security_groups=groups or None,
                       average_kbps=t.average_kbps, peak_kbps=t.peak_kbps, burst_kb=t.burst_kb)  # fmt: skip


def _release(nic: VMNic) -> None:
    """Free a NIC's lease, public IP association and quota, and delete it."""
    lease = Lease.objects.filter(nic=nic).first()
    PublicIP.objects.filter(nic=nic).update(nic=None)
    quotas.release(nic.vm.project, nic.vm.owner, ip_leases=1 if lease else 0, nic_mbps=_mbps(nic.average_kbps))
    if lease is not None:
        lease.delete()
    nic.delete()


def on_vm_done(vm: VirtualMachine) -> None:
    """The VM is DONE: its NICs go away and their addresses return to the pools (same transaction)."""
    for nic in VMNic.objects.filter(vm=vm).select_related("vm__project", "vm__owner"):
        _release(nic)


@transaction.atomic
def attach_nic(actor: Actor, vm_id: int, *, ip: str | None = None, **spec: Any) -> VMNic:
    """Add a NIC to a VM: cold while it is on no host, hot (hypervisor hotplug) while RUNNING."""
    vm = lock_vm(actor, vm_id)
    hot = vm.state in HOT_STATES
    if not NIC_TABLE.allowed(NicAction.ATTACH, vm.state, busy=vm.busy):
        raise Conflict(f"cannot attach a NIC to a VM in state {vm.state}", field="state")
    if hot:
        _require_hotplug(vm)
    nic = create_nic(actor, vm, **spec)
    audit(actor, vm, NicAction.ATTACH, ip=ip, nic=nic.pk, network=nic.network_id)
    _refresh_peers(nic)
    if hot:
        outbox.send("hostagent.hotplug_nic", (nic.pk,), queue=f"host.{vm.host_id}")
    return nic


@transaction.atomic
def detach_nic(actor: Actor, nic_id: int, *, ip: str | None = None) -> None:
    """Remove a NIC (and free its address): cold, or hot while RUNNING on a host that can."""
    found = VMNic.objects.restrict(actor, "manage").filter(pk=nic_id).first()
    if found is None:
        raise NotFound("NIC not found")
    vm = lock_vm(actor, found.vm_id)
    nic = VMNic.objects.select_related("vm__project", "vm__owner").get(pk=nic_id)
    hot = vm.state in HOT_STATES
    if not NIC_TABLE.allowed(NicAction.DETACH, vm.state, busy=vm.busy):
        raise Conflict(f"cannot detach a NIC from a VM in state {vm.state}", field="state")
    if hot:
        _require_hotplug(vm)
        from .. import tasks
        from ..vmnics import nic_spec

        spec = nic_spec(nic)
        outbox.send("hostagent.hotunplug_nic", tasks.unplug_order(vm, spec.mac, spec.tap), queue=f"host.{vm.host_id}")
    audit(actor, vm, NicAction.DETACH, ip=ip, nic=nic.pk, network=nic.network_id)
    groups = list(nic.security_groups.all())
    _release(nic)
    for g in groups:
        refresh_group(g)


def _require_hotplug(vm: VirtualMachine) -> None:
    from compute.drivers.registry import capabilities

    host = vm.host
    if host is None or not capabilities(host.driver, host.uri).get("hotplug_nic"):
        raise Conflict(f"host {getattr(host, 'name', '?')} cannot hotplug NICs; power the VM off (undeploy) first",
                       field="state")  # fmt: skip


@transaction.atomic
def set_nic_groups(actor: Actor, nic_id: int, *, security_groups: Iterable[int], ip: str | None = None) -> VMNic:
    """Put a NIC in exactly these groups (at least one); its filter is re-applied on its host."""
    nic: VMNic = lock(VMNic, actor, nic_id, what="NIC")
    groups = _groups(actor, nic.vm.project_id, security_groups)
    if not groups:
        raise InvalidInput("a NIC needs at least one security group", field="security_groups")
    nic.security_groups.set(groups)
    audit(actor, nic.vm, "nic_groups", ip=ip, nic=nic.pk, groups=",".join(str(g.pk) for g in groups))
    refresh_nic(nic)
    return nic


# --------------------------------------------------------------------------------------------
# host refresh (after commit, on the NIC's host)
# --------------------------------------------------------------------------------------------
def refresh_nic(nic: VMNic) -> None:
    """Re-apply the NIC's port plan on its host after commit (when it is on one)."""
    vm = VirtualMachine.objects.filter(pk=nic.vm_id).values("host_id", "state").first()
    if not vm or vm["host_id"] is None:
        return
    outbox.send("hostagent.plug_port", (nic.pk,), queue=f"host.{vm['host_id']}")


def _refresh_peers(nic: VMNic) -> None:
    """The NIC's groups gained an address: re-apply the placed members' filters."""
    for g in nic.security_groups.all():
        refresh_group(g)


def refresh_group(group: SecurityGroup) -> None:
    """Re-apply every placed NIC in ``group`` or in a group whose rules name it."""
    ids = set(group.nics.values_list("pk", flat=True))
    ids |= set(VMNic.objects.filter(security_groups__rules__remote_group=group).values_list("pk", flat=True))
    for nic in VMNic.objects.filter(pk__in=ids, vm__host__isnull=False):
        refresh_nic(nic)
