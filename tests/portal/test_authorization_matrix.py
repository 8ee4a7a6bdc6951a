"""The authorization matrix: every API endpoint × (anonymous, viewer, member, project admin,
member of another organization, cloud admin).

Each row names the expected status for each role. A denied mutating request must change no
row, no quota usage and queue no task. ``test_every_endpoint_is_in_the_matrix`` fails when a
new endpoint is added without its row.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from compute import services
from tenants.quotas import QuotaUsage
from tests.conftest import client_for
from tests.factories import BootImageFactory, ClusterFactory, UserFactory

from . import matrix_extensions

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPvDAmcYNL3ht2uz0zIJ2om+PBjfx10nIzQ3CUHuvzYM alice@example"
ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


READ_PROJECT = E(401, 200, 200, 200, 404, 200)
READ_ANY = E(401, 200, 200, 200, 200, 200)
ADMIN_ONLY_READ = E(401, 403, 403, 403, 403, 200)

# (method, path, body, expected); {P} project, {O} organization, {T} template, {V} VM (HOLD),
# {H} host, {C} cluster, {B} boot image, {U} the member user
MATRIX: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/api/v1/projects/", None, READ_ANY),
    ("GET", "/api/v1/projects/{P}/", None, READ_PROJECT),
    ("POST", "/api/v1/projects/", {"organization": "{O}", "name": "new"}, E(401, 404, 404, 404, 404, 201)),
    ("DELETE", "/api/v1/projects/{P}/", None, E(401, 404, 404, 409, 404, 409)),
    ("GET", "/api/v1/projects/{P}/quotas/", None, READ_PROJECT),
    ("POST", "/api/v1/projects/{P}/quotas/", {"resource": "vms", "limit": 3}, E(401, 403, 403, 403, 404, 200)),
    ("GET", "/api/v1/projects/{P}/members/", None, READ_PROJECT),
    ("POST", "/api/v1/projects/{P}/members/", {"user": "newbie", "role": "viewer"}, E(401, 404, 404, 200, 404, 200)),
    ("GET", "/api/v1/organizations/", None, READ_ANY),
    ("GET", "/api/v1/organizations/{O}/", None, READ_PROJECT),
    ("POST", "/api/v1/organizations/", {"name": "neworg"}, E(401, 403, 403, 403, 403, 201)),
    ("PATCH", "/api/v1/organizations/{O}/", {"description": "x"}, E(401, 404, 404, 404, 404, 200)),
    ("DELETE", "/api/v1/organizations/{O}/", None, E(401, 403, 403, 403, 404, 409)),
    ("POST", "/api/v1/organizations/{O}/roles/", {"user": "newbie", "role": "admin"}, E(401, 404, 404, 404, 404, 200)),
    ("GET", "/api/v1/quota-defaults/", None, ADMIN_ONLY_READ),
    ("POST", "/api/v1/quota-defaults/", {"resource": "vms", "limit": 30}, E(401, 403, 403, 403, 403, 200)),
    ("GET", "/api/v1/users/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/users/{U}/", None, ADMIN_ONLY_READ),
    ("POST", "/api/v1/users/", {"username": "u2", "password": "a-good-long-pass-42"}, E(401, 403, 403, 403, 403, 201)),
    ("POST", "/api/v1/users/{U}/action/", {"action": "disable"}, E(401, 403, 403, 403, 403, 200)),
    ("DELETE", "/api/v1/users/{U}/", None, E(401, 403, 403, 403, 403, 409)),
    ("GET", "/api/v1/tokens/", None, READ_ANY),
    ("GET", "/api/v1/tokens/{K}/", None, E(401, 404, 200, 404, 404, 404)),  # only its owner
    ("DELETE", "/api/v1/tokens/{K}/", None, E(401, 404, 204, 404, 404, 404)),  # only its owner
    ("DELETE", "/api/v1/ssh-keys/{S}/", None, E(401, 404, 204, 404, 404, 404)),
    ("POST", "/api/v1/tokens/", {"name": "t"}, E(401, 201, 201, 201, 201, 201)),
    ("GET", "/api/v1/ssh-keys/", None, READ_ANY),
    ("GET", "/api/v1/clusters/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/clusters/{C}/", None, ADMIN_ONLY_READ),
    ("POST", "/api/v1/clusters/", {"name": "c-new"}, E(401, 403, 403, 403, 403, 201)),
    ("GET", "/api/v1/hosts/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/hosts/{H}/", None, ADMIN_ONLY_READ),
    (
        "POST",
        "/api/v1/hosts/",
        {"name": "h-new", "uri": "test:///default", "hypervisor": "test"},
        E(401, 403, 403, 403, 403, 201),
    ),
    ("POST", "/api/v1/hosts/{H}/action/", {"action": "disable"}, E(401, 403, 403, 403, 403, 200)),
    ("PUT", "/api/v1/hosts/{H}/bmc/", {"power_driver": "none"}, E(401, 403, 403, 403, 403, 200)),
    ("POST", "/api/v1/hosts/{H}/power/", {"action": "status"}, E(401, 403, 403, 403, 403, 409)),  # no BMC
    ("GET", "/api/v1/hosts/{H}/maintenance/", None, ADMIN_ONLY_READ),
    ("POST", "/api/v1/hosts/{H}/maintenance/", {"action": "maintenance"}, E(401, 403, 403, 403, 403, 200)),
    ("DELETE", "/api/v1/hosts/{H}/", None, E(401, 403, 403, 403, 403, 204)),
    ("GET", "/api/v1/boot-images/", None, READ_ANY),
    ("GET", "/api/v1/boot-images/{B}/", None, READ_PROJECT),
    (
        "POST",
        "/api/v1/boot-images/",
        {"project": "{P}", "name": "img", "kind": "disk"},
        E(401, 403, 403, 403, 403, 201),
    ),
    ("GET", "/api/v1/templates/", None, READ_ANY),
    ("GET", "/api/v1/templates/{T}/", None, READ_PROJECT),
    (
        "POST",
        "/api/v1/templates/",
        {"project": "{P}", "name": "t2", "vcpu": 1, "memory_mb": 256},
        E(401, 404, 201, 201, 404, 201),
    ),
    ("PATCH", "/api/v1/templates/{T}/", {"vcpu": 2}, E(401, 404, 200, 200, 404, 200)),
    ("DELETE", "/api/v1/templates/{T}/", None, E(401, 404, 204, 204, 404, 204)),
    # viewers get 200 with only the shares that reach them (tenants/sharing.visible_shares);
    # user names outside the sharer's organizations answer 404 like unknown ones, hence "viewer"
    ("GET", "/api/v1/templates/{T}/shares/", None, READ_PROJECT),
    ("POST", "/api/v1/templates/{T}/shares/", {"user": "viewer"}, E(401, 404, 200, 200, 404, 200)),
    ("GET", "/api/v1/vms/", None, READ_ANY),
    ("GET", "/api/v1/vms/{V}/", None, READ_PROJECT),
    ("GET", "/api/v1/vms/{V}/history/", None, READ_PROJECT),
    ("GET", "/api/v1/vms/{V}/metrics/", None, READ_PROJECT),
    ("GET", "/api/v1/hosts/{H}/metrics/", None, ADMIN_ONLY_READ),
    (
        "POST",
        "/api/v1/vms/",
        {"name": "n", "project": "{P}", "template": "{T}", "hold": True},
        E(401, 404, 202, 202, 404, 202),
    ),
    ("POST", "/api/v1/vms/{V}/action/", {"action": "terminate"}, E(401, 404, 202, 202, 404, 202)),
    # a host is infrastructure: outside a member's scope, so the id in the body is 404 like a missing one
    ("POST", "/api/v1/vms/{V}/action/", {"action": "deploy", "host": "{H}"}, E(401, 404, 404, 404, 404, 202)),
    ("POST", "/api/v1/vms/{V}/action/", {"action": "deploy"}, E(401, 404, 403, 403, 404, 202)),
    ("GET", "/api/v1/events/", None, READ_ANY),
    ("GET", "/api/v1/events/{EV}/", None, READ_PROJECT),
    ("GET", "/api/v1/webhooks/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/webhooks/{W}/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/webhooks/{W}/deliveries/", None, ADMIN_ONLY_READ),
    (
        "POST",
        "/api/v1/webhooks/",
        {"name": "w", "url": "http://127.0.0.1:9/", "event_types": ["x.*"]},
        E(401, 403, 403, 403, 403, 201),
    ),
    ("GET", "/api/v1/audit/", None, READ_ANY),
    ("GET", "/api/v1/audit/{A}/", None, READ_PROJECT),
    ("GET", "/api/v1/schema/", None, E(200, 200, 200, 200, 200, 200)),  # the API description is public
]
MATRIX += matrix_extensions.api_rows()


@pytest.fixture
def world(project: Any, admin_user: Any, member: Any, viewer: Any, project_admin: Any, other_tenant: Any,
          template: Any, make_sim_host: Any, request: Any) -> dict[str, Any]:  # fmt: skip
    from monitoring.models import AuditRecord
    from tenants import credentials

    UserFactory(username="newbie")
    from monitoring.models import Event, Webhook

    token, _secret = credentials.create_token(member, name="mine")
    key = credentials.add_ssh_key(member, name="k", public_key=ED25519)
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    host = make_sim_host("h1", cluster=ClusterFactory())
    image = BootImageFactory(project=project, owner=member, public=False)
    users = {"anon": None, "viewer": viewer, "member": member, "padmin": project_admin, "other": other_tenant,
             "admin": admin_user}  # fmt: skip
    ids = {"P": project.pk, "O": project.organization_id, "T": template.pk, "V": vm.pk, "H": host.pk,
           "C": host.cluster_id, "B": image.pk, "U": member.pk,
           "EV": Event.objects.filter(project=project).first().pk,
           "W": Webhook.objects.create(name="w0", url="http://127.0.0.1:9/", event_types=["none"]).pk,
           "K": token.pk, "S": key.pk, "A": AuditRecord.objects.get(object_type="virtualmachine", object_id=str(vm.pk)).pk}  # fmt: skip
    matrix_extensions.build_world(ids, users, project, member, admin_user, request)
    return {"users": users, "ids": ids}


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str):
        m = re.fullmatch(r"\{(\w+)\}", value)
        return ids[m.group(1)] if m else value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


STATE_APPS = ("compute", "tenants", "auth", "storage", "images", "network")


def _state() -> tuple[Any, ...]:
    """Every row count of the project's models, and every quota figure."""
    counts = tuple(m.objects.count() for m in apps.get_models() if m._meta.app_label in STATE_APPS)
    usage = tuple(QuotaUsage.objects.order_by("pk").values_list("used", flat=True))
    return counts, usage


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path,body,expected", MATRIX, ids=[f"{m} {p}" for m, p, _b, _e in MATRIX])
def test_matrix(method: str, path: str, body: Any, expected: dict[str, int], role: str, world: dict[str, Any],
                django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    ids = world["ids"]
    client = client_for(world["users"][role])
    before = _state()
    with django_capture_on_commit_callbacks() as queued:
        resp = client.generic(method, _fill(path, ids), data=__import__("json").dumps(_fill(body, ids)) if body else "",
                              content_type="application/json")  # fmt: skip
    assert resp.status_code == expected[role], (role, method, path, resp.status_code, resp.content[:300])
    if method != "GET" and resp.status_code >= 400:
        assert _state() == before, "a denied request changed rows or quota usage"
        assert queued == [], "a denied request queued a task"


def _api_routes() -> set[str]:
    out: set[str] = set()

    def walk(patterns: Any, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith("api/v1/") and "format" not in route and route != "api/v1/^$":
                    out.add(route)

    walk(get_resolver().url_patterns, "")
    return out


def _normalise(route: str) -> str:
    route = route.replace("^", "").replace("$", "").replace("\\.", ".")
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "{}", route)
    route = re.sub(r"<[^>]+>", "{}", route)
    return "/" + route


def test_every_endpoint_is_in_the_matrix() -> None:
    covered = {re.sub(r"\{\w+\}", "{}", p) for _m, p, _b, _e in MATRIX} | {"/api/v1/", "/api/v1/docs/"}
    covered |= {p.rstrip("/") + "/" for p in covered}
    missing = sorted(
        r for r in map(_normalise, _api_routes()) if r not in covered and r.rstrip("/") + "/" not in covered
    )
    # list and detail routes of one viewset share a row each; actions are listed explicitly
    assert missing == [], f"endpoints without a row in the authorization matrix: {missing}"
