"""Boot images (kernels or disk files registered by path on the hosts): the only writers of
``BootImage`` rows. Cloud administrators register them; everyone may list the ones they see."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from monitoring.audit import record_action
from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.querysets import Actor, is_cloud_admin

from ..models import BootImage, name_validator
from .references import delete_row, refuse_if_used, release_done_vms
from .templates import manageable_project

FIELDS = frozenset({"project", "name", "kind", "kernel_path", "initrd_path", "cmdline", "disk_path", "public"})
PATHS = ("kernel_path", "initrd_path", "disk_path")
MAX_PATH = 1024


def _require_admin(actor: Actor) -> None:
    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators register boot images")


def _apply(actor: Actor, img: BootImage, changes: dict[str, Any]) -> None:
    unknown = set(changes) - FIELDS
    if unknown:
        raise InvalidInput(f"cannot set {', '.join(sorted(unknown))} on a boot image", field=sorted(unknown)[0])
    if "project" in changes:
        img.project = manageable_project(actor, changes["project"])
    if "name" in changes:
        name = changes["name"].strip() if isinstance(changes["name"], str) else ""
        try:
            name_validator(name)
        except ValidationError as exc:
            raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
        img.name = name
    if "kind" in changes:
        if changes["kind"] not in BootImage.Kind.values:
            raise InvalidInput(f"kind must be one of {', '.join(BootImage.Kind.values)}", field="kind")
        img.kind = changes["kind"]
    for key in (*PATHS, "cmdline"):
        if key not in changes:
            continue
        value = changes[key] or ""
        if not isinstance(value, str) or len(value) > MAX_PATH or "\x00" in value:
            raise InvalidInput(f"{key} is text of at most {MAX_PATH} characters", field=key)
        if key in PATHS and value and not value.startswith("/"):
            raise InvalidInput(f"{key} must be an absolute path on the hosts", field=key)
        setattr(img, key, value)
    if "public" in changes:
        if not isinstance(changes["public"], bool):
            raise InvalidInput("public must be true or false", field="public")
        img.public = changes["public"]


def _lock(actor: Actor, boot_image_id: Any) -> BootImage:
    pk = getattr(boot_image_id, "pk", boot_image_id)
    img = None
    if str(pk).isdigit():
        img = BootImage.objects.restrict(actor, "manage").select_for_update().filter(pk=int(pk)).first()
    if img is None:
        raise NotFound("boot image not found", field="boot_image")
    return img


@transaction.atomic
def create_boot_image(actor: User, *, project: Any, name: str, ip: str | None = None, **fields: Any) -> BootImage:
    """Register a boot image in ``project``: ``kind`` kernel (``kernel_path``, ``initrd_path``,
    ``cmdline``) or disk (``disk_path``); ``public`` makes it everyone's."""
    _require_admin(actor)
    img = BootImage(owner=actor)
    _apply(actor, img, {"project": project, "name": name, **fields})
    img.save()
    record_action(actor, img, "create", ip=ip, kind=img.kind, public=img.public)
    return img


@transaction.atomic
def update_boot_image(actor: Actor, boot_image_id: Any, *, ip: str | None = None, **changes: Any) -> BootImage:
    _require_admin(actor)
    img = _lock(actor, boot_image_id)
    _apply(actor, img, changes)
    img.save()
    record_action(actor, img, "update", ip=ip, fields=",".join(sorted(changes)))
    return img


@transaction.atomic
def delete_boot_image(actor: Actor, boot_image_id: Any, *, ip: str | None = None) -> None:
    """Delete a boot image no template or live VM uses (409 naming them otherwise); VMs that
    are DONE forget it."""
    _require_admin(actor)
    img = _lock(actor, boot_image_id)
    what = f"boot image {img.name}"
    refuse_if_used(img, what, field="boot_image")
    released = release_done_vms(img, "boot_image")
    record_action(actor, img, "delete", ip=ip, done_vms_released=released)
    delete_row(img, what, field="boot_image")
