"""Sharing and publication of templates and boot images (OpenNebula's owner / group / other).

Sharing grants ``view`` on one object to another project (its members' group) or to one user,
as a django-guardian per-object permission; publication makes it visible cloud-wide and is a
cloud administrator's decision.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms, remove_perm

from monitoring.audit import record_action
from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.models import Project
from tenants.querysets import is_cloud_admin
from tenants.signals import project_group


def _perm(obj: Any) -> str:
    return f"{obj._meta.app_label}.view_{obj._meta.model_name}"


def _owned(actor: Any, model: Any, obj_id: int) -> Any:
    obj = model.objects.restrict(actor, "manage").filter(pk=obj_id).first()
    if obj is None:
        raise NotFound(f"{model._meta.verbose_name} not found")
    return obj


@transaction.atomic
def share(actor: Any, model: Any, obj_id: int, *, project_id: int | None = None, username: str | None = None) -> Any:
    """Let another project (every member) or one user see and use the object."""
    obj = _owned(actor, model, obj_id)
    if (project_id is None) == (username is None):
        raise InvalidInput("share with exactly one of project or user", field="project")
    if project_id is not None:
        target = Project.objects.filter(pk=project_id).first()
        if target is None:
            raise NotFound("project not found", field="project")
        assign_perm(_perm(obj), project_group(target), obj)
        record_action(actor, obj, "share", project=obj.project, with_project=target.pk)
    else:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise NotFound("user not found", field="user")
        assign_perm(_perm(obj), user, obj)
        record_action(actor, obj, "share", project=obj.project, with_user=user.username)
    return obj


@transaction.atomic
def unshare(actor: Any, model: Any, obj_id: int, *, project_id: int | None = None, username: str | None = None) -> Any:
    obj = _owned(actor, model, obj_id)
    if project_id is not None:
        target = Project.objects.filter(pk=project_id).first()
        if target is not None and target.group_id:
            remove_perm(_perm(obj), target.group, obj)
    if username is not None:
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            remove_perm(_perm(obj), user, obj)
    record_action(actor, obj, "unshare", project=obj.project)
    return obj


def shares(obj: Any) -> dict[str, list[Any]]:
    """Who the object is shared with."""
    groups: dict[Any, Any] = get_groups_with_perms(obj, attach_perms=True)  # type: ignore[assignment]
    users: dict[Any, Any] = get_users_with_perms(obj, attach_perms=True, with_group_users=False, with_superusers=False)  # type: ignore[assignment]
    return {
        "projects": sorted(g.project.pk for g in groups if hasattr(g, "project")),
        "users": sorted(u.username for u in users),
    }


@transaction.atomic
def publish(actor: Any, model: Any, obj_id: int, public: bool) -> Any:
    """Publish to (or withdraw from) the whole cloud: cloud administrators only."""
    if not is_cloud_admin(actor):
        raise PermissionDenied("publication is approved by cloud administrators", field="public")
    obj = model.objects.filter(pk=obj_id).first()
    if obj is None:
        raise NotFound(f"{model._meta.verbose_name} not found")
    obj.public = public
    obj.save(update_fields=["public"])
    record_action(actor, obj, "publish" if public else "unpublish", project=obj.project)
    return obj
