"""Authorization-matrix rows for datastores (API and pages); see tests/portal/matrix_extensions.py.

Datastores are infrastructure: cloud administrators only (auditors read through the API).
{DS} is an empty READY dir datastore.
"""

from __future__ import annotations

from typing import Any

ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


ADMIN_ONLY_READ = E(401, 403, 403, 403, 403, 200)
PAGE_ADMIN = E(302, 404, 404, 404, 404, 200)

API: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/api/v1/datastores/", None, ADMIN_ONLY_READ),
    ("GET", "/api/v1/datastores/{DS}/", None, ADMIN_ONLY_READ),
    ("POST", "/api/v1/datastores/", {"name": "ds-new", "kind": "system"}, E(401, 403, 403, 403, 403, 201)),
    ("PATCH", "/api/v1/datastores/{DS}/", {"clone_mode": "copy"}, E(401, 403, 403, 403, 403, 200)),
    ("POST", "/api/v1/datastores/{DS}/action/", {"action": "disable"}, E(401, 403, 403, 403, 403, 200)),
    ("POST", "/api/v1/datastores/{DS}/action/", {"action": "refresh"}, E(401, 403, 403, 403, 403, 202)),
    ("DELETE", "/api/v1/datastores/{DS}/", None, E(401, 403, 403, 403, 403, 204)),
]

UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/storage/datastores/", None, PAGE_ADMIN),
    ("GET", "/storage/datastores/{DS}/", None, PAGE_ADMIN),
    (
        "POST",
        "/storage/datastores/create/",
        {"name": "ds-ui", "kind": "image", "driver": "dir", "clone_mode": "cow"},
        E(302, 404, 404, 404, 404, 302),
    ),
    ("POST", "/storage/datastores/{DS}/action/", {"action": "disable"}, E(302, 404, 404, 404, 404, 302)),
    (
        "POST",
        "/storage/datastores/{DS}/edit/",
        {"name": "renamed", "clone_mode": "copy"},
        E(302, 404, 404, 404, 404, 302),
    ),
]


def world(ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any) -> None:
    from tests.storage.factories import DatastoreFactory

    ids["DS"] = DatastoreFactory().pk
