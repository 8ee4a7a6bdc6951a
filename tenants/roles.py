"""Roles and the actions each allows: the one table the access gate reads (docs/roles.md).

A role is a named set of actions on a scope. Actions: ``view`` (read), ``manage`` (create and
operate resources), ``admin`` (administer the scope: members, quotas, deletion).
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    """Roles held on one project."""

    ADMIN = "admin", "Project admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class OrgRole(models.TextChoices):
    """Roles held on an organization (they reach every project of it)."""

    ADMIN = "admin", "Organization admin"


class CloudRole(models.TextChoices):
    """Roles over the whole cloud."""

    ADMIN = "cloud-admin", "Cloud admin"
    AUDITOR = "cloud-auditor", "Cloud auditor"


ALL_ACTIONS = frozenset({"view", "manage", "admin"})

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: ALL_ACTIONS,
    Role.MEMBER: frozenset({"view", "manage"}),
    Role.VIEWER: frozenset({"view"}),
}
ORG_ROLE_ACTIONS: dict[str, frozenset[str]] = {OrgRole.ADMIN: ALL_ACTIONS}
CLOUD_ROLE_ACTIONS: dict[str, frozenset[str]] = {CloudRole.ADMIN: ALL_ACTIONS, CloudRole.AUDITOR: frozenset({"view"})}
# The Django group whose members are cloud auditors (cloud admins are staff users).
AUDITOR_GROUP = "cloud-auditors"


def roles_allowing(action: str) -> list[str]:
    """The project roles that grant ``action``."""
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]


def org_roles_allowing(action: str) -> list[str]:
    return [role for role, actions in ORG_ROLE_ACTIONS.items() if action in actions]
