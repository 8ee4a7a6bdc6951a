"""Creating VMs from a template: quota, the VM rows, and the other managers' hooks."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from monitoring.audit import record_action
from monitoring.events import emit
from portal import bulk, outbox
from portal.errors import Conflict, InvalidInput, NotFound
from portal.events import publish_vm
from tenants import quotas
from tenants.models import Project

from .. import hooks
from ..models import (
    BootImage,
    CreateRequest,
    Host,
    VirtualMachine,
    VMStateChange,
    VMTemplate,
)
from ..states import VMState as S
from . import context
from .lifecycle import validate_capacity

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# creation
# --------------------------------------------------------------------------------------------
@transaction.atomic
@bulk.collected  # the rows of every VM (state changes, events, audit, dispatch) in one INSERT each
def create_vms(
    actor: User,
    *,
    project: Project | int,
    template: VMTemplate | int | None = None,
    name: str,
    count: int = 1,
    vcpu: int | None = None,
    memory_mb: int | None = None,
    hold: bool = False,
    ip: str | None = None,
    user_data: str = "",
    client_token: str = "",
    image: int | None = None,
    disk_gb: int | None = None,
    networks: Sequence[int] = (),
    security_groups: Sequence[int] = (),
) -> list[VirtualMachine]:
    """Instantiate ``template`` ``count`` times in ``project``; VMs enter PENDING (or HOLD).

    Without a template, from ``image`` (an OS image of the image manager the actor may see):
    then ``vcpu`` and ``memory_mb`` are required and ``disk_gb`` (optional) grows the VM's copy
    of the image. ``networks`` (ids) add one NIC each, in ``security_groups`` (ids), beside
    what the template gives. ``user_data`` goes into each VM's NoCloud seed (≤ 16 KiB; see
    compute/context.py). ``client_token``: an idempotency key; a retry with the same key and
    parameters returns the VMs of the first request (even while it is still running elsewhere:
    it waits for it). ``project`` and ``template`` are objects or ids: either way they are
    resolved here, through the access gate, at the time of use (a caller need not look them up)."""
    found = Project.objects.restrict(actor, "manage").filter(pk=_pk(project, "project") or 0).first()
    if found is None:
        raise NotFound("project not found", field="project")
    project = found
    template_id = _pk(template, "template")
    if (template is None) == (image is None):
        raise InvalidInput("give either a template or an image", field="template" if template is None else "image")
    networks = _ids(networks, "networks")
    security_groups = _ids(security_groups, "security_groups")
    claim = None
    if client_token:
        params = [project.pk, template_id, name, count, vcpu, memory_mb, hold, user_data,
                  _pk(image), disk_gb, networks, security_groups]  # fmt: skip
        digest = hashlib.sha256(json.dumps(params).encode()).hexdigest()
        claim, earlier = _claim_token(actor, client_token, digest)
        if earlier is not None:
            return earlier
    if not 1 <= count <= 100:
        raise InvalidInput("count must be between 1 and 100", field="count")
    tpl: VMTemplate | None = None
    if template_id is not None:
        # The template and what it references are resolved again now, with the creator's rights
        # at this moment: a template or boot image whose share was revoked makes no new VM.
        fresh = VMTemplate.objects.restrict(actor, "view").select_related("boot_image").filter(pk=template_id).first()
        if fresh is None:
            raise NotFound("template not found", field="template")
        tpl = fresh
        if (
            tpl.boot_image_id is not None
            and not BootImage.objects.restrict(actor, "view").filter(pk=tpl.boot_image_id).exists()
        ):
            raise Conflict("the template's boot image is not available to you (no longer shared?)", field="template")
        vcpu = tpl.vcpu if vcpu is None else vcpu
        memory_mb = tpl.memory_mb if memory_mb is None else memory_mb
        disk_gb = tpl.disk_gb
    else:
        if vcpu is None or memory_mb is None:
            raise InvalidInput(
                "vcpu and memory_mb are needed to create from an image", field="vcpu" if vcpu is None else "memory_mb"
            )
        if disk_gb is not None and (isinstance(disk_gb, bool) or not isinstance(disk_gb, int)):
            raise InvalidInput("disk_gb must be a whole number", field="disk_gb")
        disk_gb = disk_gb or 0
    validate_capacity(vcpu, memory_mb, disk_gb)
    refuse_if_it_can_never_fit(tpl, vcpu, memory_mb, disk_gb)
    context.validate_user_data(user_data)
    from django.core.exceptions import ValidationError

    from ..models import name_validator

    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
    vms = []
    for i in range(count):
        vm = VirtualMachine.objects.create(
            project=project,
            owner=actor,
            name=name if count == 1 else f"{name}-{i}"[:63],
            template=tpl,
            boot_image=tpl.boot_image if tpl else None,
            vcpu=vcpu,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            **(_placement(tpl) if tpl else {}),
            state=S.HOLD if hold else S.PENDING,
            user_data=user_data,
        )
        bulk.add(VMStateChange(vm=vm, from_state="", to_state=vm.state, reason="created"))
        emit(f"virtualmachine.state.{vm.state}", vm, actor=actor, from_state="", reason="created")
        source = {"template": tpl.pk} if tpl else {"image": _pk(image)}
        record_action(actor, vm, "create", ip=ip, vcpu=vcpu, memory_mb=memory_mb, **source)
        publish_vm(vm)
        vms.append(vm)
    hooks.vms_created(actor, vms, tpl)  # the template's disks (storage), NICs and leases (network)
    if tpl is None:
        hooks.image_requested(actor, vms, _pk(image), disk_gb * GIB)  # the image's copy (storage)
    if networks:
        hooks.nics_requested(actor, vms, networks, security_groups)  # more NICs (network)
    if claim is not None:
        claim.vm_ids = [vm.pk for vm in vms]
        claim.save(update_fields=["vm_ids"])
    # Quota rows are locked last, after every VM, image, datastore and network row the hooks
    # locked (the one lock order, tenants/quotas.py); a refusal rolls all of it back.
    quotas.consume(
        project,
        actor,
        vms=count,
        running_vms=count,  # HOLD and PENDING count as running, as in OpenNebula
        vcpu=vcpu * count,
        memory_mb=memory_mb * count,
        system_disk_gb=disk_gb * count,
    )
    if not hold:
        # through the outbox: the VMs are committed whatever the broker does (the client gets its
        # 202), and their dispatch is published as soon as the broker takes it
        for vm in vms:
            outbox.send("compute.schedule_vm", (vm.pk,))
    return vms


GIB = 1024**3


def _placement(tpl: VMTemplate) -> dict[str, Any]:
    """What a VM takes over from its template besides its size."""
    return {
        "required_labels": tpl.required_labels, "restart_policy": tpl.restart_policy, "ha": tpl.ha,
        "hypervisor": tpl.hypervisor, "cluster": tpl.cluster,
    }  # fmt: skip


def refuse_if_it_can_never_fit(tpl: VMTemplate | None, vcpu: int, memory_mb: int, disk_gb: int) -> None:
    """400 naming the field when hosts eligible for the VM exist (its template's hypervisor,
    cluster, labels) and not one of them could hold it even empty (its total capacity): such a VM
    would wait in PENDING forever, holding quota. A VM that merely finds every host full now is
    accepted and waits; so is one no host is eligible for yet (hosts may be added)."""
    eligible = Host.objects.filter(total_vcpu__gt=0)  # probed at least once (sizes known)
    if tpl is not None and tpl.hypervisor:
        eligible = eligible.filter(hypervisor=tpl.hypervisor)
    if tpl is not None and tpl.cluster_id is not None:
        eligible = eligible.filter(cluster_id=tpl.cluster_id)
    if tpl is not None and tpl.required_labels and connection.vendor == "postgresql":
        eligible = eligible.filter(labels__contains=tpl.required_labels)  # SQLite: not narrowed
    if eligible.filter(total_vcpu__gte=vcpu, total_memory_mb__gte=memory_mb, total_disk_gb__gte=disk_gb).exists():
        return
    largest = eligible.aggregate(vcpu=Max("total_vcpu"), memory_mb=Max("total_memory_mb"), disk_gb=Max("total_disk_gb"))
    if largest["vcpu"] is None:
        return  # no eligible host at all yet: it waits with the scheduler's reason
    asked = {"vcpu": (vcpu, "vCPU"), "memory_mb": (memory_mb, "MiB of memory"), "disk_gb": (disk_gb, "GiB of disk")}
    for field, (value, unit) in asked.items():
        if value > largest[field]:
            raise InvalidInput(
                f"{field}: no host could ever hold this VM — it asks {value} {unit} and the largest eligible "
                f"host has {largest[field]}",
                field=field,
            )
    raise InvalidInput(
        f"no single eligible host has {vcpu} vCPU, {memory_mb} MiB and {disk_gb} GiB together", field="vcpu"
    )


def _pk(value: Any, field: str = "image") -> int | None:
    pk = getattr(value, "pk", value)
    if pk is None:
        return None
    if isinstance(pk, bool) or not isinstance(pk, int):
        raise InvalidInput(f"{field} must be an id", field=field)
    return pk


def _ids(values: Sequence[Any], field: str) -> list[int]:
    """Ids (or objects) as a list of ids; anything else is a 400 naming ``field``."""
    out = []
    for v in values or ():
        pk = getattr(v, "pk", v)
        if isinstance(pk, bool) or not isinstance(pk, int) or pk < 1:
            raise InvalidInput(f"{field} must be a list of ids", field=field)
        out.append(pk)
    if len(out) > 8:
        raise InvalidInput(f"{field}: at most 8", field=field)
    return list(dict.fromkeys(out))


def _claim_token(actor: User, token: str, digest: str) -> tuple[CreateRequest | None, list[VirtualMachine] | None]:
    """Take ``token`` for this request, or find the VMs of the earlier request that took it.

    The unique (owner, token) row is inserted in a savepoint: a concurrent twin blocks on the
    index until the first commits (then it reads that request's VMs) or rolls back (then it
    proceeds as the first)."""
    if not 1 <= len(token) <= 64 or not token.isprintable():
        raise InvalidInput("client_token must be 1 to 64 printable characters", field="client_token")
    expired = timezone.now() - timedelta(seconds=CreateRequest.KEY_TTL_S)
    CreateRequest.objects.filter(owner=actor, token=token, created_at__lt=expired).delete()
    try:
        with transaction.atomic():
            return CreateRequest.objects.create(owner=actor, token=token, digest=digest), None
    except IntegrityError:
        earlier = CreateRequest.objects.get(owner=actor, token=token)
    if earlier.digest != digest:
        raise Conflict("client_token was already used for a create with other parameters", field="client_token")
    return None, list(VirtualMachine.objects.filter(pk__in=earlier.vm_ids).order_by("pk"))
