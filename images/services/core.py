"""Image repository services: the only code that changes images (CONVENTIONS §2).

Files live at ``<datastore.path>/<uuid>.<format>`` (``<uuid>.part`` while uploading): a name
the user sends is kept for display only and never becomes a path. ``Image.path`` holds the
absolute path of the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from monitoring.audit import record_action
from portal import operations
from portal.errors import Conflict, InvalidInput, NotFound
from storage.models import Datastore, DatastoreKind
from tenants import quotas
from tenants.models import Project
from tenants.querysets import Actor, is_cloud_admin

from .. import qemu, states
from ..models import Image, ImageFormat, ImageState, ImageType

GiB = 1 << 30


def max_virtual_bytes(project: Project) -> int:
    """The largest virtual size an image of ``project`` may have: the settings cap
    ``NEPHELE_IMAGE_MAX_VIRTUAL_GB`` or what is left of the project's ``volume_gb`` quota,
    whichever is smaller."""
    cap = int(getattr(settings, "NEPHELE_IMAGE_MAX_VIRTUAL_GB", 1024)) * GiB
    (line,) = quotas.usage(project, resources={"volume_gb": "Volume size (GiB)"})
    if line.limit != quotas.UNLIMITED:
        cap = min(cap, max(0, line.limit - line.used) * GiB)
    return cap


def image_datastore(datastore: Any, *, field: str = "datastore") -> Datastore:
    """The datastore (the default one when none is named), checked to be a ready image
    datastore with a local path."""
    if datastore in (None, ""):
        datastore = default_datastore()
    ds = datastore if isinstance(datastore, Datastore) else Datastore.objects.filter(pk=datastore).first()
    if ds is None:
        raise NotFound("datastore not found", field=field)
    if ds.kind != DatastoreKind.IMAGE:
        raise InvalidInput(
            f"datastore {ds.name} is a {ds.kind} datastore; images live in image datastores", field=field
        )
    if getattr(ds, "state", "ready") != "ready":
        raise Conflict(f"datastore {ds.name} is {ds.state}", field=field)
    if not ds.path:
        raise InvalidInput(f"datastore {ds.name} has no path", field=field)
    Path(ds.path).mkdir(parents=True, exist_ok=True)
    return ds


def default_datastore() -> Datastore | None:
    """The storage manager's default image datastore (used when a request names none)."""
    from storage.services.datastores import default_image_datastore

    try:
        return default_image_datastore()
    except Conflict:
        return None


def file_path(image: Image, fmt: str | None = None, suffix: str = "") -> str:
    """Where the image's file lives in its datastore (the uuid, never a user-supplied name)."""
    return os.path.join(os.path.realpath(image.datastore.path), f"{image.uuid}.{fmt or image.format}{suffix}")


def part_path(image: Image) -> str:
    return os.path.join(os.path.realpath(image.datastore.path), f"{image.uuid}.part")


def inside(datastore: Datastore, path: str) -> bool:
    """Is ``path`` (resolved) a file directly under ``datastore``'s path?"""
    root = os.path.realpath(datastore.path)
    return os.path.dirname(os.path.realpath(path)) == root


def project_for(actor: Actor, project: Any, action: str = "manage") -> Project:
    """The project, if ``actor`` may ``action`` in it (404 otherwise)."""
    pk = getattr(project, "pk", project)
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise InvalidInput("project must be a project number", field="project") from None
    qs = Project.objects.all() if actor is None else Project.objects.restrict(actor, action)
    found = qs.filter(pk=pk).first()
    if found is None:
        raise NotFound("project not found", field="project")
    return found


def lock(actor: Actor, image_id: int, action: str = "manage") -> Image:
    """The image row, locked, if ``actor`` may ``action`` it; 404 otherwise."""
    return operations.lock(Image, image_id, actor=actor, action=action, what="image")


def guard(image: Image, action: str) -> None:
    """409 unless ``action`` is allowed from the image's state (``images.states.TABLE``)."""
    states.TABLE.require(action, image, noun="an image")


def _validate_name(name: str) -> str:
    from django.core.exceptions import ValidationError

    from compute.models import name_validator

    name = (name or "").strip()
    if not name:
        raise InvalidInput("name is required", field="name")
    if len(name) > 63:
        raise InvalidInput("name is longer than 63 characters", field="name")
    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(f"name: {exc.messages[0]}", field="name") from exc
    return name


def _validate_type(type: str) -> str:
    if type not in ImageType.values:
        raise InvalidInput(f"type must be one of {', '.join(ImageType.values)}", field="type")
    return type


def new_image(
    actor: User, project: Project, datastore: Datastore, *, name: str, type: str = "os", **fields: Any
) -> Image:
    """Create an image row and take one ``images`` quota unit (caller holds the transaction)."""
    owner = fields.pop("owner", None) or actor
    quotas.consume(project, owner, images=1)
    img = Image.objects.create(
        project=project,
        owner=owner,
        name=_validate_name(name),
        type=_validate_type(type),
        datastore=datastore,
        **fields,
    )
    return img


def remove_files(*paths: str) -> None:
    for p in paths:
        if p:
            Path(p).unlink(missing_ok=True)


def _fill_from_file(img: Image, path: str, fmt: str, info: qemu.ImageInfo, sha256: str) -> None:
    img.path = path
    img.format = fmt
    img.size_bytes = os.stat(path).st_blocks * 512
    img.virtual_size_bytes = info.virtual_size
    img.sha256 = sha256
    img.state = ImageState.READY
    img.state_message = ""
    img.progress = 100


@transaction.atomic
def register_file(
    actor: User,
    *,
    project: Any,
    name: str,
    datastore: Any,
    path: str,
    type: str = "os",
    persistent: bool = False,
    description: str = "",
    owner: Any = None,
) -> Image:
    """Adopt a file already inside image datastore ``datastore`` as a READY image.

    The format is detected once on that file, then read again with it pinned and passed through
    the same safety checks as an upload (no backing or data file, no foreign VMDK extents,
    virtual size within the limit). Takes one ``images`` quota unit (of ``owner``, default the
    actor). Used by "save a VM disk as a new image". Raises ``InvalidInput`` (field ``path``) when the file is unsafe or outside.
    """
    ds = image_datastore(datastore)
    proj = project_for(actor, project)
    if not inside(ds, path) or not os.path.isfile(path) or os.path.islink(path):
        raise InvalidInput(f"{path} is not a file inside datastore {ds.name}", field="path")
    try:
        fmt, info = qemu.inspect(path, max_virtual_bytes=max_virtual_bytes(proj))
    except qemu.QemuImgError as exc:
        raise InvalidInput(f"image refused: {exc.message}", field="path") from exc
    owner = owner or (actor if getattr(actor, "pk", None) else None)
    if owner is None:  # a system caller (no actor): the project's first member owns it
        first = proj.memberships.select_related("user").order_by("pk").first()
        if first is None:
            raise InvalidInput("the image needs an owner: pass owner= or an actor", field="owner")
        owner = first.user
    img = new_image(actor, proj, ds, name=name, type=type, owner=owner, persistent=persistent, description=description)
    _fill_from_file(img, os.path.realpath(path), fmt, info, qemu.sha256_file(path))
    img.save()
    record_action(actor, img, "register", format=fmt)
    return img


@transaction.atomic
def set_in_use(image_id: int, in_use: bool) -> None:
    """A persistent image taken by a VM (USED) or given back (READY again, only from USED).

    Called by the storage manager inside the transaction that attaches or releases the disk."""
    if in_use:
        Image.objects.filter(pk=image_id).update(state=ImageState.USED)
    else:
        Image.objects.filter(pk=image_id, state=ImageState.USED).update(state=ImageState.READY)


@transaction.atomic  # the row lock needs a transaction (without one PostgreSQL refuses FOR UPDATE)
def update_image(actor: Actor, image_id: int, **changes: Any) -> Image:
    """Change name, description, type or persistent."""
    img = lock(actor, image_id)
    guard(img, "update")
    allowed = {"name", "description", "type", "persistent"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if "name" in changes:
        img.name = _validate_name(changes["name"])
    if "type" in changes:
        img.type = _validate_type(changes["type"])
    if "description" in changes:
        img.description = str(changes["description"])[:4000]
    if "persistent" in changes:
        img.persistent = bool(changes["persistent"])
    img.save()
    record_action(actor, img, "update", fields=",".join(sorted(changes)))
    return img


@transaction.atomic
def set_enabled(actor: Actor, image_id: int, enabled: bool) -> Image:
    """Enable (DISABLED → READY) or disable (READY → DISABLED) an image."""
    img = lock(actor, image_id)
    guard(img, "enable" if enabled else "disable")
    img.state = ImageState.READY if enabled else ImageState.DISABLED
    img.save(update_fields=["state", "updated_at"])
    record_action(actor, img, "enable" if enabled else "disable")
    return img


@transaction.atomic
def delete_image(actor: Actor, image_id: int) -> None:
    """Delete the image and its file; refused while a VM uses it (the VM is named) or while a
    clone or conversion reads it. Gives the ``images`` quota unit back."""
    from storage.vmdisks import templates_using_image, vms_using_image

    img = lock(actor, image_id)
    guard(img, "delete")
    users = vms_using_image(img.pk)
    if users:
        names = ", ".join(f"{vm.name} (#{vm.pk})" for vm in users[:5])
        raise Conflict(f"image {img.name} is used by VM {names}", field="image")
    templates = templates_using_image(img.pk)
    if templates:  # a VM created from them later would get no disk
        names = ", ".join(f"{t.name} (#{t.pk})" for t in templates[:5])
        raise Conflict(f"image {img.name} is a disk of template {names}; remove the disk first", field="image")
    if Image.objects.filter(derived_from=img, state=ImageState.CONVERTING).exists():
        raise Conflict(f"image {img.name} is being cloned or converted; retry when that ends", field="image")
    paths = [img.path, part_path(img)]
    if img.format:
        paths.append(file_path(img, suffix=".tmp"))
    quotas.release(img.project, img.owner, images=1)
    record_action(actor, img, "delete")
    img.delete()
    transaction.on_commit(lambda: remove_files(*paths))


def share_image(actor: Actor, image_id: int, *, project_id: int | None = None, username: str | None = None) -> Image:
    """Share with another project (its members) or one user (view and use)."""
    from tenants.sharing import share

    return share(actor, Image, image_id, project_id=project_id, username=username)  # type: ignore[no-any-return]


def unshare_image(actor: Actor, image_id: int, *, project_id: int | None = None, username: str | None = None) -> Image:
    from tenants.sharing import unshare

    return unshare(actor, Image, image_id, project_id=project_id, username=username)  # type: ignore[no-any-return]


@transaction.atomic
def request_publish(actor: Actor, image_id: int, requested: bool = True) -> Image:
    """A project member asks (or stops asking) for cloud-wide publication; a cloud admin
    publishes at once."""
    img = lock(actor, image_id)
    if is_cloud_admin(actor) and requested:
        return set_public(actor, image_id, True)
    img.publish_requested = requested
    img.save(update_fields=["publish_requested", "updated_at"])
    record_action(actor, img, "request_publish" if requested else "withdraw_publish")
    return img


@transaction.atomic
def set_public(actor: Actor, image_id: int, public: bool) -> Image:
    """Publish (approve) or unpublish: cloud administrators only."""
    from tenants.sharing import publish

    img: Image = publish(actor, Image, image_id, public)
    Image.objects.filter(pk=img.pk).update(publish_requested=False)
    img.publish_requested = False
    return img


def image_format_choices() -> list[str]:
    return [f for f in ImageFormat.values if f != ImageFormat.ISO]
