"""Sharing and publication of templates and boot images (OpenNebula's owner / group / other).

Sharing grants ``view`` on one object to another project (its members' group) or to one user,
as a django-guardian per-object permission; publication makes it visible cloud-wide and is a
cloud administrator's decision.

Privacy: only those who may manage an object see whom it is shared with (``visible_shares``);
anyone else who sees it learns only whether it is shared with them. Sharing with a user name
finds only users of the sharer's organizations (cloud administrators: anyone); any other name,
existing or not, gets the same "user not found" answer, so the call is no user-name oracle. To
share across organizations, share with the other project.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms, remove_perm

from monitoring.audit import record_action
from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.models import Membership, OrgMembership, Project
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
        user = _shareable_users(actor).filter(username=username, is_active=True).first()
        if user is None:  # the same answer for a name that exists outside the sharer's organizations
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


def _shareable_users(actor: Any) -> Any:
    """Users the actor may name in a share: members of its organizations' projects and of the
    organizations themselves (cloud administrators: every user)."""
    users = get_user_model().objects.all()
    if is_cloud_admin(actor):
        return users
    orgs = set(Membership.objects.filter(user=actor).values_list("project__organization_id", flat=True))
    orgs |= set(OrgMembership.objects.filter(user=actor).values_list("organization_id", flat=True))
    return users.filter(
        pk__in=Membership.objects.filter(project__organization_id__in=orgs)
        .values("user_id")
        .union(OrgMembership.objects.filter(organization_id__in=orgs).values("user_id"))
    )


def visible_shares(actor: Any, obj: Any) -> dict[str, list[Any]]:
    """Whom the object is shared with, as ``actor`` may know it: everything for those who may
    manage it; for anyone else only the shares that reach them (their projects, their name)."""
    everything = shares(obj)
    if type(obj).objects.restrict(actor, "manage").filter(pk=obj.pk).exists():
        return everything
    mine = set(Membership.objects.filter(user=actor).values_list("project_id", flat=True))
    name = actor.get_username()
    return {
        "projects": [pk for pk in everything["projects"] if pk in mine],
        "users": [u for u in everything["users"] if u == name],
    }


def shares(obj: Any) -> dict[str, list[Any]]:
    """Whom the object is shared with (everything: for those who may manage it)."""
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
