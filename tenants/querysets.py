"""The one access gate every model goes through (NetBox's RestrictedQuerySet pattern).

``Model.objects.restrict(user, action)`` returns exactly the rows ``user`` may act on with
``action`` ("view", "manage" or "admin"), from the roles table in ``tenants/roles.py``:
cloud admins everything, cloud auditors view everything, organization admins everything in
their organizations' projects, project roles their project. A token scoped to one project
narrows all of it to that project. Views, API views and services start from it, so a foreign
object is indistinguishable from a missing one (404).
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.db.models import Q

from .roles import AUDITOR_GROUP, org_roles_allowing, roles_allowing

M = TypeVar("M", bound=models.Model)

#: who acts: a signed-in user, an anonymous request, or None for the system (periodic tasks,
#: agents' reports, LDAP provisioning)
Actor: TypeAlias = User | AnonymousUser | None


def is_cloud_admin(user: Actor) -> bool:
    """Cloud administrators see and act on everything."""
    if user is None or not user.is_authenticated:
        return False
    return bool(user.is_superuser or user.is_staff)


def is_cloud_auditor(user: Actor) -> bool:
    """Cloud auditors see everything and change nothing (cached on the user object per request)."""
    if user is None or not user.is_authenticated:
        return False
    cached = getattr(user, "_nephele_auditor", None)
    if cached is None:
        cached = user.groups.filter(name=AUDITOR_GROUP).exists()
        setattr(user, "_nephele_auditor", cached)  # noqa: B010 - a per-request cache on the user object
    return bool(cached)


def token_project_id(user: Actor) -> int | None:
    """The project an API token confines this request to, if any (set by the token backend)."""
    return getattr(user, "_nephele_token_project", None)


def allowed_projects(user: Actor, action: str) -> models.QuerySet[Any]:
    """Primary keys of the projects on which ``user`` may ``action`` (a subquery)."""
    from tenants.models import Project

    q = Q(memberships__user=user, memberships__role__in=roles_allowing(action)) | Q(
        organization__memberships__user=user, organization__memberships__role__in=org_roles_allowing(action)
    )
    return Project.objects.filter(q).values("pk")


class RestrictedQuerySet(models.QuerySet[M]):
    """A queryset scoped by the caller's roles.

    ``project_path`` is the lookup path from the model to its project ("" for Project itself,
    ``None`` for infrastructure that only cloud administrators may touch).
    """

    project_path: str | None = "project"

    def restrict(self, user: Actor, action: str = "view") -> RestrictedQuerySet[M]:
        if user is None or not user.is_authenticated:
            return self.none()
        key = f"{self.project_path}_id" if self.project_path else "pk"
        if self.project_path and "__" in self.project_path:
            key = f"{self.project_path}__pk"
        scoped = token_project_id(user)
        if is_cloud_admin(user) or (action == "view" and is_cloud_auditor(user)):
            if scoped is None or self.project_path is None:
                return self if scoped is None else self.none()
            return self.filter(**{key: scoped})
        if self.project_path is None:  # infrastructure: cloud administrators (and auditors) only
            return self.none()
        qs = self.filter(**{f"{key}__in": allowed_projects(user, action)})
        return qs.filter(**{key: scoped}) if scoped is not None else qs


class AdminOnlyQuerySet(RestrictedQuerySet[M]):
    """Infrastructure objects (hosts, clusters): cloud administrators (auditors: read)."""

    project_path = None


class ShareableQuerySet(RestrictedQuerySet[M]):
    """Objects a project owns that may also be shared (per-object guardian grants to another
    project's group or to a user) or published to the whole cloud (``public``). Sharing and
    publication widen ``view`` only; managing stays with the owning project."""

    def restrict(self, user: Actor, action: str = "view") -> RestrictedQuerySet[M]:
        base = super().restrict(user, action)
        if action != "view" or user is None or not user.is_authenticated or is_cloud_admin(user):
            return base
        from guardian.shortcuts import get_objects_for_user

        meta = self.model._meta
        shared = get_objects_for_user(
            user,
            f"{meta.app_label}.view_{meta.model_name}",
            klass=self.model._default_manager.all(),
            accept_global_perms=False,
        )
        return self.filter(Q(pk__in=base.values("pk")) | Q(public=True) | Q(pk__in=shared.values("pk")))
