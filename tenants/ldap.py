"""LDAP / Active Directory login (django-auth-ldap), with group → project role mapping.

Configured from the environment (see docs/authentication.md); off when NEPHELE_LDAP_URI is
unset. On every login the user's attributes are synced and the roles their LDAP groups map to
are granted (``NEPHELE_LDAP_GROUP_ROLES``); a group mapped to cloud administrators makes the
user staff.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend, populate_user


class NepheleLDAPBackend(LDAPBackend):
    """django-auth-ldap's backend; settings come from AUTH_LDAP_* (built by ``tenants.ldap_config``)."""


@transaction.atomic
def sync_roles(user: Any, group_dns: set[str]) -> list[str]:
    """Grant the project roles the user's LDAP groups map to; returns what was granted.

    ``NEPHELE_LDAP_GROUP_ROLES``: {"cn=devs,ou=groups,dc=example": [["acme", "web", "member"]]}.
    """
    from .models import Membership, Organization, Project
    from .roles import Role

    mapping: dict[str, list[list[str]]] = getattr(settings, "NEPHELE_LDAP_GROUP_ROLES", {})
    granted = []
    lowered = {g.lower() for g in group_dns}
    for dn, grants in mapping.items():
        if dn.lower() not in lowered:
            continue
        for org_name, project_name, role in grants:
            if role not in Role.values:
                continue
            org, _ = Organization.objects.get_or_create(name=org_name)
            project, _ = Project.objects.get_or_create(organization=org, name=project_name)
            Membership.objects.update_or_create(user=user, project=project, defaults={"role": role})
            granted.append(f"{role}@{org_name}/{project_name}")
    return granted


def _on_populate(sender: Any, user: Any, ldap_user: Any, **_: Any) -> None:
    if not user.pk:
        user.save()  # memberships need the row
    sync_roles(user, set(ldap_user.group_dns))


populate_user.connect(_on_populate, dispatch_uid="nephele-ldap-roles")
