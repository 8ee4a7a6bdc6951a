"""AUTH_LDAP_* settings from NEPHELE_LDAP_* environment variables (imported by settings.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def ldap_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """AUTH_LDAP_* settings from NEPHELE_LDAP_* environment variables ({} when LDAP is off)."""
    uri = env.get("NEPHELE_LDAP_URI", "")
    if not uri:
        return {}
    import ldap
    from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

    out: dict[str, Any] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env.get("NEPHELE_LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": env.get("NEPHELE_LDAP_BIND_PASSWORD", ""),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(
            env["NEPHELE_LDAP_USER_BASE"], ldap.SCOPE_SUBTREE, env.get("NEPHELE_LDAP_USER_FILTER", "(uid=%(user)s)")
        ),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_START_TLS": env.get("NEPHELE_LDAP_START_TLS", "false").lower() == "true",
    }
    if env.get("NEPHELE_LDAP_GROUP_BASE"):
        out["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            env["NEPHELE_LDAP_GROUP_BASE"], ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)"
        )
        out["AUTH_LDAP_GROUP_TYPE"] = GroupOfNamesType()
        out["AUTH_LDAP_FIND_GROUP_PERMS"] = False
    if env.get("NEPHELE_LDAP_ADMIN_GROUP"):
        out["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = {
            "is_staff": env["NEPHELE_LDAP_ADMIN_GROUP"],
            "is_superuser": env["NEPHELE_LDAP_ADMIN_GROUP"],
        }
    out["NEPHELE_LDAP_GROUP_ROLES"] = json.loads(env.get("NEPHELE_LDAP_GROUP_ROLES", "{}"))
    return out
