"""The authorization matrix of the browser pages: every UI view × the six roles.

Anonymous visitors are sent to the login page (302); pages of objects outside the caller's
scope answer 404; a refused action changes nothing and queues nothing.
``test_every_page_is_in_the_matrix`` fails when a page is added without its row.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from compute import services
from tests.factories import ClusterFactory

from . import matrix_extensions
from .test_authorization_matrix import ROLES, E, _fill, _state

PAGE_PROJECT = E(302, 200, 200, 200, 404, 200)
PAGE_ANY = E(302, 200, 200, 200, 200, 200)
PAGE_ADMIN = E(302, 404, 404, 404, 404, 200)

UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/", None, PAGE_ANY),
    ("GET", "/compute/vms/", None, PAGE_ANY),
    ("GET", "/compute/vms/{V}/", None, PAGE_PROJECT),
    ("GET", "/compute/vms/{V}/live/", None, PAGE_PROJECT),
    ("GET", "/compute/vms/{V}/menu/", None, PAGE_PROJECT),
    ("GET", "/compute/vms/{V}/metrics/", None, PAGE_PROJECT),
    ("GET", "/compute/vms/{V}/log/", None, PAGE_PROJECT),
    ("GET", "/compute/vms/chips/", None, PAGE_ANY),
    ("GET", "/compute/vms/create/preview/", None, PAGE_ANY),
    # each VM's refusal is in the answer (200): a viewer's and a stranger's change nothing
    ("POST", "/compute/vms/bulk/", {"action": "release", "vm": "{V}"}, E(302, 200, 200, 200, 200, 200)),
    ("GET", "/compute/vms/{V}/monitoring/", None, PAGE_PROJECT),
    # refusals by the service come back as a message on the VM page (302 there), nothing changed
    ("POST", "/compute/vms/{V}/action/", {"action": "terminate"}, E(302, 302, 302, 302, 404, 302)),
    ("POST", "/compute/vms/create/", {"name": "x", "template": "{T}", "count": 1}, E(302, 400, 302, 302, 400, 302)),
    ("GET", "/compute/templates/", None, PAGE_ANY),
    ("GET", "/compute/templates/{T}/edit/", None, E(302, 404, 200, 200, 404, 200)),
    (
        "POST",
        "/compute/templates/{T}/edit/",
        {"name": "renamed", "vcpu": 1, "memory_mb": 256, "disk_gb": 0},
        E(302, 404, 302, 302, 404, 302),
    ),  # fmt: skip
    ("POST", "/compute/templates/{T}/delete/", None, E(302, 404, 302, 302, 404, 302)),
    ("GET", "/compute/hosts/", None, PAGE_ADMIN),
    ("GET", "/compute/hosts/{H}/", None, PAGE_ADMIN),
    ("GET", "/compute/hosts/{H}/metrics/", None, PAGE_ADMIN),
    (
        "POST",
        "/compute/hosts/register/",
        {"name": "h9", "uri": "test:///default", "hypervisor": "test"},
        E(302, 404, 404, 404, 404, 302),
    ),
    ("POST", "/compute/hosts/{H}/action/", {"action": "disable"}, E(302, 404, 404, 404, 404, 302)),
    ("POST", "/compute/hosts/{H}/action/", {"action": "power_on"}, E(302, 404, 404, 404, 404, 302)),
    ("POST", "/compute/hosts/{H}/bmc/", {"power_driver": "none"}, E(302, 404, 404, 404, 404, 302)),
    ("GET", "/account/2fa/", None, PAGE_ANY),
    ("GET", "/account/", None, PAGE_ANY),
    ("GET", "/events/", None, PAGE_ANY),
    ("GET", "/events/audit/", None, PAGE_ANY),
    ("GET", "/metrics", None, E(401, 401, 401, 401, 401, 200)),
    ("GET", "/webhooks/", None, PAGE_ADMIN),
    ("POST", "/account/action/", {"what": "token-create", "name": "t", "days": 5}, E(302, 302, 302, 302, 302, 302)),
    ("GET", "/identity/", None, PAGE_ANY),
    ("POST", "/identity/action/", {"what": "org-create", "name": "neworg"}, E(302, 302, 302, 302, 302, 302)),
    (
        "POST",
        "/identity/action/",
        {"what": "grant", "project": "{P}", "username": "newbie", "role": "admin"},
        E(302, 302, 302, 302, 302, 302),
    ),
    ("GET", "/identity/quotas/", None, PAGE_ADMIN),  # and organization admins (tests/tenants/test_views.py)
    (
        "POST",
        "/identity/quotas/action/",
        {"what": "limit", "project": "{P}", "resource": "vcpu", "limit": "3"},
        E(302, 302, 302, 302, 302, 302),
    ),
    ("POST", "/project/switch/", {"project": "{P}"}, E(302, 302, 302, 302, 302, 302)),
    ("GET", "/login/", None, E(200, 200, 200, 200, 200, 200)),
    ("GET", "/login/kerberos/", None, E(404, 404, 404, 404, 404, 404)),  # Kerberos not configured here
    ("POST", "/logout/", None, E(302, 302, 302, 302, 302, 302)),
    ("GET", "/admin/", None, E(302, 302, 302, 302, 302, 200)),
]
UI += matrix_extensions.ui_rows()
# which roles' refusals are "denied" (must change nothing), per row
DENIED_CHANGES = {
    ("POST", "/compute/vms/{V}/action/"): {"anon", "viewer", "other"},
    ("POST", "/compute/vms/bulk/"): {"anon", "viewer", "other"},
    ("POST", "/identity/action/"): {"anon", "viewer", "member", "other"},  # org-create: also padmin (below)
    ("POST", "/identity/quotas/action/"): {"anon", "viewer", "member", "padmin", "other"},
}
DENIED_CHANGES.update(matrix_extensions.denied_changes())


@pytest.fixture
def world(project: Any, admin_user: Any, member: Any, viewer: Any, project_admin: Any, other_tenant: Any,
          template: Any, make_sim_host: Any, request: Any) -> dict[str, Any]:  # fmt: skip
    from tests.factories import UserFactory

    UserFactory(username="newbie")
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    host = make_sim_host("h1", cluster=ClusterFactory())
    users = {"anon": None, "viewer": viewer, "member": member, "padmin": project_admin, "other": other_tenant,
             "admin": admin_user}  # fmt: skip
    ids = {"P": project.pk, "T": template.pk, "V": vm.pk, "H": host.pk}
    matrix_extensions.build_world(ids, users, project, member, admin_user, request)
    return {"users": users, "ids": ids}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path,body,expected", UI, ids=[f"{m} {p}" for m, p, _b, _e in UI])
def test_ui_matrix(method: str, path: str, body: Any, expected: dict[str, int], role: str, world: dict[str, Any],
                   django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    client = Client()
    if world["users"][role] is not None:
        client.force_login(world["users"][role])
    before = _state()
    with django_capture_on_commit_callbacks() as queued:
        resp = client.generic(method, _fill(path, world["ids"]), data=_encode(_fill(body, world["ids"])),
                              content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert resp.status_code == expected[role], (role, method, path, resp.status_code)
    if role == "anon" and resp.status_code == 302 and path != "/metrics":
        assert resp["Location"].startswith(("/login/", "/admin/login/")) or path == "/logout/"
    denied = resp.status_code in (400, 403, 404) or role in DENIED_CHANGES.get((method, path), set())
    if body and body.get("what") == "org-create" and role != "admin":
        denied = True
    if method == "POST" and denied and path not in ("/logout/", "/project/switch/"):
        assert _state() == before, "a refused request changed rows or quota usage"
        assert queued == []


def _encode(body: dict[str, Any] | None) -> str:
    from urllib.parse import urlencode

    return urlencode(body or {})


def test_every_page_is_in_the_matrix() -> None:
    routes: set[str] = set()

    def walk(patterns: Any, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith(("api/", "admin/")):
                    continue
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and not str(p.pattern).startswith("api/"):
                routes.add("/" + re.sub(r"<[^>]+>", "{}", prefix + str(p.pattern)))

    walk(get_resolver().url_patterns, "")
    covered = {re.sub(r"\{\w+\}", "{}", p) for _m, p, _b, _e in UI}
    assert sorted(routes - covered) == []
