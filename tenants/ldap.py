"""LDAP / Active Directory login (django-auth-ldap), with group → project role mapping.

Configured from the environment (see docs/authentication.md); off when NEPHELE_LDAP_URI is
unset. On every login the user's attributes are synced and the roles their LDAP groups map to
are granted (``NEPHELE_LDAP_GROUP_ROLES``); a group mapped to cloud administrators makes the
user staff.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend, populate_user

log = logging.getLogger(__name__)


class NepheleLDAPBackend(LDAPBackend):
    """django-auth-ldap's backend; settings come from AUTH_LDAP_* (built by ``tenants.ldap_config``)."""


@transaction.atomic
def sync_roles(user: Any, group_dns: set[str]) -> list[str]:
    """Grant the project roles the user's LDAP groups map to; returns what was granted.

    ``NEPHELE_LDAP_GROUP_ROLES``: {"cn=devs,ou=groups,dc=example": [["acme", "web", "member"]]}.
    Organizations, projects and memberships are made through the tenancy services with the
    system as the actor, so each creation and grant is in the audit trail; a mapping the
    services refuse (a name too long) is logged and skipped, the login goes on.
    """
    from portal.errors import ServiceError

    from . import services as tenancy
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
            try:
                with transaction.atomic():
                    org, _ = tenancy.ensure_organization(None, org_name)
                    project, _ = tenancy.ensure_project(None, org, project_name)
                    tenancy.grant_project_role(None, project=project, user=user, role=role, source="ldap", group=dn)
            except ServiceError as exc:
                log.warning("LDAP role mapping %s -> %s/%s refused: %s", dn, org_name, project_name, exc.message)
                continue
            granted.append(f"{role}@{org_name}/{project_name}")
    return granted


def _on_populate(sender: Any, user: Any, ldap_user: Any, **_: Any) -> None:
    if not user.pk:
        user.save()  # memberships need the row
    sync_roles(user, set(ldap_user.group_dns))


populate_user.connect(_on_populate, dispatch_uid="nephele-ldap-roles")
