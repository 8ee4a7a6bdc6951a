"""Project roles and the actions each allows: the one table the access gate reads."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Project admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset({"view", "manage", "admin"}),
    Role.MEMBER: frozenset({"view", "manage"}),
    Role.VIEWER: frozenset({"view"}),
}


def roles_allowing(action: str) -> list[str]:
    """The project roles that grant ``action``."""
    return [role for role, actions in ROLE_ACTIONS.items() if action in actions]
