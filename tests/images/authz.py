"""Authorization-matrix rows for the image repository (API and pages); see
tests/portal/matrix_extensions.py.

{IM}: a READY qcow2 image of the project (a real file), owned by the member;
{IMU}: an image of the project in UPLOADING (nothing received yet).
"""

from __future__ import annotations

from typing import Any

ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


READ_ANY = E(401, 200, 200, 200, 200, 200)
READ_PROJECT = E(401, 200, 200, 200, 404, 200)
MANAGE = E(401, 404, 200, 200, 404, 200)
PAGE_ANY = E(302, 200, 200, 200, 200, 200)
PAGE_PROJECT = E(302, 200, 200, 200, 404, 200)
# page forms: a refusal is a message on the page (302 there); a foreign image answers 404
PAGE_POST = E(302, 302, 302, 302, 404, 302)

API: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/api/v1/images/", None, READ_ANY),
    ("GET", "/api/v1/images/{IM}/", None, READ_PROJECT),
    ("POST", "/api/v1/images/", {"project": "{P}", "name": "up"}, E(401, 404, 201, 201, 404, 201)),
    ("PATCH", "/api/v1/images/{IM}/", {"description": "x"}, MANAGE),
    ("DELETE", "/api/v1/images/{IM}/", None, E(401, 404, 204, 204, 404, 204)),
    ("PUT", "/api/v1/images/{IMU}/upload/", {"bytes": "of a tiny raw file"}, MANAGE),
    (
        "POST",
        "/api/v1/images/datablock/",
        {"project": "{P}", "name": "db", "size_gb": 1},
        E(401, 404, 201, 201, 404, 201),
    ),
    # the project is checked before the files: members get the missing-file error
    ("POST", "/api/v1/images/import-ovf/", {"project": "{P}"}, E(401, 404, 400, 400, 404, 400)),
    ("POST", "/api/v1/images/{IM}/action/", {"action": "disable"}, MANAGE),
    ("POST", "/api/v1/images/{IM}/action/", {"action": "request_publish"}, MANAGE),
    ("POST", "/api/v1/images/{IM}/action/", {"action": "publish"}, E(401, 403, 403, 403, 404, 200)),
    ("POST", "/api/v1/images/{IM}/action/", {"action": "clone"}, E(401, 404, 202, 202, 404, 202)),
    ("GET", "/api/v1/images/{IM}/shares/", None, READ_PROJECT),
    ("POST", "/api/v1/images/{IM}/shares/", {"user": "viewer"}, MANAGE),
]

UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/images/", None, PAGE_ANY),
    ("GET", "/images/upload/", None, E(302, 404, 200, 200, 200, 200)),
    ("POST", "/images/datablock/", {"name": "db", "size_gb": 1}, E(302, 302, 302, 302, 302, 302)),
    ("POST", "/images/import/", {"name": "x"}, E(302, 302, 302, 302, 302, 302)),
    ("GET", "/images/{IM}/", None, PAGE_PROJECT),
    ("GET", "/images/{IM}/progress/", None, PAGE_PROJECT),
    ("POST", "/images/{IM}/action/", {"action": "disable"}, PAGE_POST),
    ("POST", "/images/{IM}/edit/", {"name": "renamed"}, PAGE_POST),
    ("POST", "/images/{IM}/share/", {"user": "viewer"}, PAGE_POST),
]

DENIED_CHANGES = {
    ("POST", "/images/datablock/"): {"anon", "viewer"},
    ("POST", "/images/import/"): {"anon", "viewer", "member", "padmin", "other", "admin"},
    ("POST", "/images/{IM}/action/"): {"anon", "viewer", "other"},
    ("POST", "/images/{IM}/edit/"): {"anon", "viewer", "other"},
    ("POST", "/images/{IM}/share/"): {"anon", "viewer", "other"},
}


def world(ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any) -> None:
    from images.services.upload import create_upload
    from tests.images.factories import image_datastore, ready_image

    ds = image_datastore("img-authz")
    ids["IM"] = ready_image(member, project, "authz-img", ds).pk
    ids["IMU"] = create_upload(member, project=project, name="authz-up", datastore=ds).pk
