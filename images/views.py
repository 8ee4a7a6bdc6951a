"""Browser pages of the image repository: list (filters, search), detail (attributes, actions,
sharing, progress), upload (chunked, ``static/js/images-upload.js``), empty data blocks and
OVA import.

Reads start from the access gate; every change goes through ``images.services``; a refusal
comes back as a message on the page the form was on (302), never a 500.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.errors import InvalidInput, ServiceError
from portal.tables import Column, Table
from storage.models import Datastore, DatastoreKind
from tenants import quotas, sharing
from tenants.models import Project
from tenants.querysets import is_cloud_admin

from . import qemu, services, states
from .filters import VISIBILITY, ImageFilter, visibility_of, with_visibility
from .models import Image, ImageFormat, ImageState, ImageType
from .services import derive, ovf

STATE_CSS = {ImageState.READY: "ok", ImageState.USED: "ok", ImageState.DISABLED: "warn", ImageState.ERROR: "bad"}


def _back(request: HttpRequest, fallback: str, *args: Any) -> HttpResponse:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        return redirect(referer)
    return redirect(fallback, *args)


def _decorate(img: Image) -> Image:
    img.state_css = STATE_CSS.get(img.state, "busy")  # type: ignore[attr-defined]
    img.vis = visibility_of(img)  # type: ignore[attr-defined]
    return img


def _can_manage(user: Any, project: Project | None) -> bool:
    return project is not None and Project.objects.restrict(user, "manage").filter(pk=project.pk).exists()


def _image_datastores() -> list[Datastore]:
    return list(Datastore.objects.filter(kind=DatastoreKind.IMAGE, state="ready").order_by("name"))


IMAGE_COLUMNS = [
    Column("name", "Name", "name"), Column("state", "State", "state"),
    Column("type", "Type", "type", "c-type", optional=True), Column("format", "Format", "format", "c-format", optional=True),
    Column("size", "Virtual size", "virtual_size_bytes", "c-size c-num", optional=True),
    Column("visibility", "Visibility", "public", "c-visibility", optional=True),
    Column("project", "Project", "project__name", "c-project", optional=True),
]  # fmt: skip


@login_required
def image_list(request: HttpRequest) -> HttpResponse:
    """Images the user may see (the active project's, shared with it, public), with filters."""
    project = getattr(request, "project", None)
    qs = with_visibility(Image.objects.restrict(request.user, "view")).select_related("project", "datastore")
    params = request.GET.copy()
    for key in [k for k, v in params.items() if v == ""]:  # the form's "any" choice: no filter
        del params[key]
    filt = ImageFilter(params, queryset=qs)
    table = Table(request, filt.qs if filt.is_valid() else qs.none(), IMAGE_COLUMNS, default_sort="name", name="images")
    images = [_decorate(i) for i in table.rows]
    can_create = _can_manage(request.user, project)
    ctx = {
        "images": images,
        "table": table,
        "filters": params,
        "types": ImageType.choices,
        "states": ImageState.choices,
        "formats": ImageFormat.choices,
        "visibilities": VISIBILITY,
        "can_create": can_create,
        "datastores": _image_datastores() if can_create else [],
        "quota_lines": quotas.usage(project, resources={"images": "Images"}) if project else [],
        "active_project": project,
    }
    return render(request, "images/image_list.html", ctx)


@login_required
def image_upload(request: HttpRequest) -> HttpResponse:
    """The upload form; the browser sends the file in chunks to the REST API."""
    project = getattr(request, "project", None)
    if not _can_manage(request.user, project):
        raise Http404("no project you may add images to")
    ctx = {
        "active_project": project,
        "datastores": _image_datastores(),
        "types": ImageType.choices,
        "chunk_bytes": 8 << 20,
    }
    return render(request, "images/image_upload.html", ctx)


def _image_or_404(request: HttpRequest, pk: int, action: str = "view") -> Image:
    img = (
        with_visibility(Image.objects.restrict(request.user, action))
        .select_related("project", "datastore", "owner", "derived_from")
        .filter(pk=pk)
        .first()
    )
    if img is None:
        raise Http404("image not found")
    return _decorate(img)


@login_required
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    img = _image_or_404(request, pk)
    can_manage = Image.objects.restrict(request.user, "manage").filter(pk=pk).exists()
    from storage.vmdisks import vms_using_image

    ctx = {
        "image": img,
        "can_manage": can_manage,
        "is_admin": is_cloud_admin(request.user),
        "actions": states.actions_for(img.state) if can_manage else [],
        "shares": sharing.visible_shares(request.user, img) if can_manage else {"projects": [], "users": []},
        "used_by": vms_using_image(img.pk),
        "derived": with_visibility(Image.objects.restrict(request.user, "view").filter(derived_from=img)),
        "formats": [f for f in qemu.DISK_FORMATS if f != img.format],
        "datastores": _image_datastores() if can_manage else [],
        "types": ImageType.choices,
        "polling": img.state in (ImageState.UPLOADING, ImageState.CONVERTING),
    }
    return render(request, "images/image_detail.html", ctx)


@login_required
def image_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The state and progress partial, polled by the detail page while work is in flight."""
    img = _image_or_404(request, pk)
    return render(request, "images/_partials/_image_progress.html", {"image": img})


def _run(request: HttpRequest, fn: Any, ok: str) -> Any:
    try:
        result = fn()
    except ServiceError as exc:
        messages.error(request, exc.message)
        return None
    messages.success(request, ok)
    return result


@login_required
@require_POST
def image_action(request: HttpRequest, pk: int) -> HttpResponse:
    """enable, disable, clone, convert, delete, request/withdraw publication, publish/unpublish."""
    img = _image_or_404(request, pk)
    act = request.POST.get("action", "")
    u, p = request.user, request.POST
    calls: dict[str, tuple[Any, str]] = {
        "enable": (lambda: services.set_enabled(u, img.pk, True), f"{img.name} enabled."),
        "disable": (lambda: services.set_enabled(u, img.pk, False), f"{img.name} disabled."),
        "clone": (
            lambda: derive.clone_image(u, img.pk, name=p.get("name", ""), datastore=p.get("datastore") or None),
            f"Cloning {img.name}.",
        ),
        "convert": (
            lambda: derive.convert_image(
                u, img.pk, format=p.get("format", ""), name=p.get("name", ""), datastore=p.get("datastore") or None
            ),
            f"Converting {img.name} to {p.get('format', '')}.",
        ),
        "delete": (lambda: services.delete_image(u, img.pk), f"{img.name} deleted."),
        "request_publish": (lambda: services.request_publish(u, img.pk, True), "Publication requested."),
        "withdraw_publish": (lambda: services.request_publish(u, img.pk, False), "Publication request withdrawn."),
        "publish": (lambda: services.set_public(u, img.pk, True), f"{img.name} is public."),
        "unpublish": (lambda: services.set_public(u, img.pk, False), f"{img.name} is no longer public."),
    }
    if act not in calls:
        messages.error(request, f"unknown action {act!r}")
        return redirect("ui-image-detail", img.pk)
    fn, ok = calls[act]
    result = _run(request, fn, ok)
    if act == "delete" and result is not False and not Image.objects.filter(pk=img.pk).exists():
        return redirect("ui-image-list")
    if isinstance(result, Image) and result.pk != img.pk:
        return redirect("ui-image-detail", result.pk)
    return redirect("ui-image-detail", img.pk)


@login_required
@require_POST
def image_edit(request: HttpRequest, pk: int) -> HttpResponse:
    img = _image_or_404(request, pk)
    p = request.POST
    changes = {
        "name": p.get("name", img.name),
        "description": p.get("description", img.description),
        "type": p.get("type", img.type),
        "persistent": p.get("persistent") in ("on", "true", "1"),
    }
    _run(request, lambda: services.update_image(request.user, img.pk, **changes), "Image updated.")
    return redirect("ui-image-detail", img.pk)


@login_required
@require_POST
def image_share(request: HttpRequest, pk: int) -> HttpResponse:
    """Share / unshare with a project (by id) or a user (by user name)."""
    img = _image_or_404(request, pk)
    p = request.POST
    project_id: int | None = None
    raw = (p.get("project") or "").strip()
    if raw:
        if not raw.isdigit():
            messages.error(request, "project must be a project number")
            return redirect("ui-image-detail", img.pk)
        project_id = int(raw)
    username = (p.get("user") or "").strip() or None
    fn = services.unshare_image if p.get("op") == "unshare" else services.share_image
    _run(request, lambda: fn(request.user, img.pk, project_id=project_id, username=username), "Sharing updated.")
    return redirect("ui-image-detail", img.pk)


@login_required
@require_POST
def datablock_create(request: HttpRequest) -> HttpResponse:
    project = getattr(request, "project", None)
    p = request.POST

    def make() -> Image:
        if project is None:
            raise InvalidInput("choose a project first", field="project")
        return derive.create_datablock(
            request.user,
            project=project,
            name=p.get("name", ""),
            size_gb=p.get("size_gb") or 0,
            datastore=p.get("datastore") or None,
            format=p.get("format") or "qcow2",
            description=p.get("description", ""),
        )

    img = _run(request, make, "Data block created.")
    return redirect("ui-image-detail", img.pk) if img else _back(request, "ui-image-list")


@login_required
@require_POST
def ova_import(request: HttpRequest) -> HttpResponse:
    """Import an OVA archive sent with the form (Django streams the upload to a temp file)."""
    project = getattr(request, "project", None)
    f = request.FILES.get("file")

    def run() -> Any:
        if project is None:
            raise InvalidInput("choose a project first", field="project")
        if f is None:
            raise InvalidInput("choose an .ova file", field="file")
        return ovf.import_ova(
            request.user,
            project=project,
            stream=f,
            datastore=request.POST.get("datastore") or None,
            name=request.POST.get("name", ""),
        )

    tpl = _run(request, run, "Import started: the template and its disks are being created.")
    return redirect("ui-image-list") if tpl else _back(request, "ui-image-list")
