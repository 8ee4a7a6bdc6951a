"""Browser pages for volumes, a VM's disks (the "Storage" section of the VM page) and template disks.

Reads start from the access gate; every change goes through ``storage.services.volumes``; a
service's refusal comes back as a message on the page the form was on (302), never a 500.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from compute.models import VirtualMachine, VMTemplate
from portal.api import client_ip
from portal.errors import InvalidInput, ServiceError
from portal.tables import Column, Table
from tenants import quotas
from tenants.models import Project

from .models import MAX_VOLUME_BYTES, TemplateDisk, VMDisk, Volume, VolumeState
from .services import disks as disk_svc
from .services import volumes as svc

MIB = 1024**2
STATE_CSS = {
    VolumeState.AVAILABLE: "ok",
    VolumeState.IN_USE: "ok",
    VolumeState.ERROR: "bad",
}  # fmt: skip  (every other state is transient: "busy")
VOLUME_ACTIONS = ("attach", "detach", "grow", "snapshot", "revert", "delete-snapshot", "delete")


def state_css(state: str) -> str:
    return STATE_CSS.get(state, "busy")


def _back(request: HttpRequest, fallback: str, *args: Any) -> HttpResponse:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return redirect(referer)
    return redirect(fallback, *args)


def _mib(value: str | None, field: str) -> int:
    text = (value or "").strip()
    if not text.isdigit() or int(text) <= 0:
        raise InvalidInput(f"{field} must be a whole number of MiB above 0", field=field)
    return int(text) * MIB


def _decorate(vols: list[Volume]) -> list[Volume]:
    for v in vols:
        v.state_css = state_css(v.state)  # type: ignore[attr-defined]
    return vols


def manageable_projects(user: Any) -> set[int] | None:
    from tenants.querysets import is_cloud_admin

    if is_cloud_admin(user):
        return None
    return set(Project.objects.restrict(user, "manage").values_list("pk", flat=True))


# --------------------------------------------------------------------------------------------
# volumes
# --------------------------------------------------------------------------------------------
def volume_columns(cloud_wide: bool) -> list[Column]:
    project = [Column("project", "Project", "project__name", "c-project", optional=True)] if cloud_wide else []
    return [
        Column("name", "Name", "name"), Column("state", "State", "state"),
        Column("size", "Size", "size_bytes", "c-size", optional=True),
        Column("vm", "Attached to", "vm__name", "c-vm", optional=True),
        Column("datastore", "Datastore", "datastore__name", "c-datastore", optional=True), *project,
    ]  # fmt: skip


@login_required
def volume_list(request: HttpRequest) -> HttpResponse:
    """The active project's volumes (cloud-wide for admins), the create form and the quota bars."""
    from images.models import Image

    project = getattr(request, "project", None)
    qs = Volume.objects.restrict(request.user, "view").select_related("vm", "project", "datastore")
    if project is not None:
        qs = qs.filter(project=project)
    table = Table(request, qs, volume_columns(project is None), default_sort="name", name="volumes")
    vols = _decorate(table.rows)
    ctx: dict[str, Any] = {
        "volumes": vols, "table": table, "active_project": project, "busy": any(v.operation for v in vols),
    }  # fmt: skip
    if project is not None:
        ctx["quota_lines"] = [q for q in quotas.usage(project) if q.resource in ("volumes", "volume_gb")]
        ctx["can_create"] = Project.objects.restrict(request.user, "manage").filter(pk=project.pk).exists()
        ctx["images"] = Image.objects.restrict(request.user, "view").filter(
            type__in=["os", "datablock"], state__in=["ready", "used"]
        )
    ctx["max_mib"] = MAX_VOLUME_BYTES // MIB
    return render(request, "storage/volume_list.html", ctx)


@login_required
@require_POST
def volume_create(request: HttpRequest) -> HttpResponse:
    p = request.POST
    project = getattr(request, "project", None)
    try:
        size = _mib(p.get("size_mb"), "size_mb") if (p.get("size_mb") or "").strip() or not p.get("image") else None
        vol = svc.create_volume(
            request.user, project=p.get("project") or getattr(project, "pk", None), name=p.get("name", "").strip(),
            size_bytes=size, image=p.get("image") or None, description=p.get("description", ""), ip=client_ip(request),
        )  # fmt: skip
    except ServiceError as exc:
        messages.error(request, f"Volume not created: {exc.message}")
        return _back(request, "ui-volume-list")
    messages.success(request, f"Volume {vol.name} is being created.")
    return redirect("ui-volume-list")


def _volume_or_404(request: HttpRequest, pk: int) -> Volume:
    vol = (
        Volume.objects.restrict(request.user, "view")
        .select_related("vm", "project", "datastore", "source_image", "owner")
        .filter(pk=pk)
        .first()
    )
    if vol is None:
        raise Http404("volume not found")
    return _decorate([vol])[0]


@login_required
def volume_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vol = _volume_or_404(request, pk)
    ids = manageable_projects(request.user)
    can_manage = ids is None or vol.project_id in ids
    vms = []
    if can_manage and not vol.vm_id:
        vms = list(
            VirtualMachine.objects.restrict(request.user, "manage")
            .filter(project=vol.project_id)
            .exclude(state="DONE")
            .order_by("name")
        )
    return render(
        request,
        "storage/volume_detail.html",
        {"volume": vol, "can_manage": can_manage, "vms": vms, "snapshots": vol.snapshots.all()},
    )


@login_required
@require_POST
def volume_action(request: HttpRequest, pk: int) -> HttpResponse:
    """attach (vm, target), detach, grow (size_mb), snapshot (name), revert / delete-snapshot (snapshot), delete."""
    vol = _volume_or_404(request, pk)
    p, ip, user = request.POST, client_ip(request), request.user
    what = p.get("action", "")
    try:
        if what == "attach":
            svc.attach_volume(user, vol.pk, p.get("vm"), target=p.get("target", "").strip(), ip=ip)
        elif what == "detach":
            svc.detach_volume(user, vol.pk, ip=ip)
        elif what == "grow":
            svc.grow_volume(user, vol.pk, _mib(p.get("size_mb"), "size_mb"), ip=ip)
        elif what == "snapshot":
            svc.snapshot_volume(user, vol.pk, p.get("name", "").strip(), ip=ip)
        elif what == "revert":
            svc.revert_volume(user, vol.pk, p.get("snapshot"), ip=ip)
        elif what == "delete-snapshot":
            svc.delete_snapshot(user, vol.pk, p.get("snapshot"), ip=ip)
        elif what == "delete":
            svc.delete_volume(user, vol.pk, ip=ip)
        else:
            raise InvalidInput(f"unknown action {what!r}; known: {', '.join(VOLUME_ACTIONS)}", field="action")
    except ServiceError as exc:
        messages.error(request, f"{vol.name}: {exc.message}")
        return _back(request, "ui-volume-detail", vol.pk)
    messages.success(request, f"{what.replace('-', ' ').capitalize()} requested for volume {vol.name}.")
    if what == "delete":
        return redirect("ui-volume-list")
    return _back(request, "ui-volume-detail", vol.pk)


# --------------------------------------------------------------------------------------------
# VM disks (the Storage section of the VM page)
# --------------------------------------------------------------------------------------------
def vm_storage_context(user: Any, vm: VirtualMachine) -> dict[str, Any]:
    """What ``_vm_disks.html`` shows: the VM's disks, and the volumes it could attach."""
    disks = list(
        VMDisk.objects.restrict(user, "view").filter(vm=vm).select_related("image", "volume").order_by("target", "pk")
    )
    ids = manageable_projects(user)
    can_manage = ids is None or vm.project_id in ids
    free: list[Volume] = []
    if can_manage and vm.state != "DONE":
        free = list(Volume.objects.restrict(user, "manage").filter(project=vm.project_id, state=VolumeState.AVAILABLE))
    busy = any(d.state != "attached" for d in disks)  # the section refreshes itself meanwhile
    return {"disks": disks, "free_volumes": free, "can_manage_disks": can_manage, "busy": busy}


@login_required
@require_POST
def vm_volume_attach(request: HttpRequest, pk: int) -> HttpResponse:
    """Attach the posted ``volume`` to this VM (from the VM page's Storage section)."""
    vm = VirtualMachine.objects.restrict(request.user, "view").filter(pk=pk).first()
    if vm is None:
        raise Http404("virtual machine not found")
    try:
        vol = svc.attach_volume(request.user, request.POST.get("volume"), vm.pk, ip=client_ip(request))
    except ServiceError as exc:
        messages.error(request, f"{vm.name}: {exc.message}")
    else:
        messages.success(request, f"Volume {vol.name} attached to {vm.name} as {vol.target}.")
    return _back(request, "ui-vm-detail", vm.pk)


@login_required
@require_POST
def vm_disk_action(request: HttpRequest, pk: int) -> HttpResponse:
    """save-as-image (name) of one VM disk."""
    disk = VMDisk.objects.restrict(request.user, "view").filter(pk=pk).first()
    if disk is None:
        raise Http404("disk not found")
    name = request.POST.get("name", "").strip()
    try:
        if request.POST.get("action") != "save-as-image":
            raise InvalidInput("unknown action; known: save-as-image", field="action")
        disk_svc.save_disk_as_image(request.user, disk.pk, name=name, ip=client_ip(request))
    except ServiceError as exc:
        messages.error(request, f"Disk {disk.target}: {exc.message}")
    else:
        messages.success(request, f"Disk {disk.target} is being saved as image {name}.")
    return _back(request, "ui-vm-detail", disk.vm_id)


# --------------------------------------------------------------------------------------------
# template disks
# --------------------------------------------------------------------------------------------
@login_required
def template_disks(request: HttpRequest, pk: int) -> HttpResponse:
    """A template's disks (GET) and adding one (POST image or size_mb)."""
    from images.models import Image

    tpl = VMTemplate.objects.restrict(request.user, "view").filter(pk=pk).first()
    if tpl is None:
        raise Http404("template not found")
    if request.method == "POST":
        p = request.POST
        try:
            size = _mib(p.get("size_mb"), "size_mb") if not p.get("image") else 0
            disk_svc.add_template_disk(
                request.user,
                tpl.pk,
                image=p.get("image") or None,
                size_bytes=size,
                cmdline=p.get("cmdline", "").strip(),
            )
        except ServiceError as exc:
            messages.error(request, f"Disk not added: {exc.message}")
        else:
            messages.success(request, f"Disk added to template {tpl.name}.")
        return redirect("ui-template-disks", tpl.pk)
    can_manage = VMTemplate.objects.restrict(request.user, "manage").filter(pk=tpl.pk).exists()
    ctx = {
        "template": tpl,
        "disks": TemplateDisk.objects.filter(template=tpl).select_related("image").order_by("position", "pk"),
        "can_manage": can_manage,
        "images": Image.objects.restrict(request.user, "view").filter(state__in=["ready", "used"]).order_by("name")
        if can_manage
        else [],
    }
    return render(request, "storage/volume_template_disks.html", ctx)


@login_required
@require_POST
def template_disk_remove(request: HttpRequest, pk: int) -> HttpResponse:
    td = TemplateDisk.objects.restrict(request.user, "view").filter(pk=pk).first()
    if td is None:
        raise Http404("template disk not found")
    try:
        disk_svc.remove_template_disk(request.user, td.pk)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Disk removed from the template.")
    return redirect("ui-template-disks", td.template_id)
