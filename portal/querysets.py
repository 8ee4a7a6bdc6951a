"""The one access gate every model goes through (NetBox's RestrictedQuerySet pattern).

``Model.objects.restrict(user, action)`` returns exactly the rows ``user`` may act on with
``action`` ("view", "manage" or "admin"). Views, API views and services start from it, so a
foreign object is indistinguishable from a missing one (404).
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

from tenants.roles import roles_allowing

M = TypeVar("M", bound=models.Model)


def is_cloud_admin(user: Any) -> bool:
    """Cloud administrators see and act on everything."""
    return bool(getattr(user, "is_authenticated", False) and (user.is_superuser or user.is_staff))


class RestrictedQuerySet(models.QuerySet[M]):
    """A queryset scoped by project membership.

    ``project_path`` is the lookup path from the model to its project ("" for Project itself,
    ``None`` for infrastructure that only cloud administrators may touch).
    """

    project_path: str | None = "project"

    def restrict(self, user: Any, action: str = "view") -> RestrictedQuerySet[M]:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        if is_cloud_admin(user):
            return self
        if self.project_path is None:  # admin-only objects (hosts, clusters)
            return self.none()
        prefix = f"{self.project_path}__" if self.project_path else ""
        return self.filter(
            **{
                f"{prefix}memberships__user": user,
                f"{prefix}memberships__role__in": roles_allowing(action),
            }
        )


class AdminOnlyQuerySet(RestrictedQuerySet[M]):
    """Infrastructure objects (hosts, clusters): cloud administrators only."""

    project_path = None
