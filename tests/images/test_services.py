"""Image services: who may do what (every operation), sharing and publication, visibility,
concurrent chunks, and the OpenAPI description."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from images import services
from images.models import Image, ImageState
from images.services import derive, upload
from portal.errors import Conflict, NotFound, PermissionDenied
from tests.conftest import client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

from .factories import ready_image


def _operations(img: Image, project: Any) -> dict[str, Any]:
    return {
        "update": lambda u: services.update_image(u, img.pk, name="x1"),
        "disable": lambda u: services.set_enabled(u, img.pk, False),
        "share": lambda u: services.share_image(u, img.pk, username="member"),
        "unshare": lambda u: services.unshare_image(u, img.pk, username="member"),
        "request_publish": lambda u: services.request_publish(u, img.pk),
        "clone": lambda u: derive.clone_image(u, img.pk),
        "convert": lambda u: derive.convert_image(u, img.pk, format="raw"),
        "delete": lambda u: services.delete_image(u, img.pk),
        "upload": lambda u: upload.create_upload(u, project=project, name="u"),
        "datablock": lambda u: derive.create_datablock(u, project=project, name="d", size_gb=1),
    }


@pytest.mark.parametrize(
    "op",
    ["update", "disable", "share", "unshare", "request_publish", "clone", "convert", "delete", "upload", "datablock"],
)
def test_viewers_and_strangers_cannot_change_images(member, viewer, other_tenant, project, datastore, op) -> None:
    img = ready_image(member, project, "mine", datastore)
    before = list(Image.objects.order_by("pk").values_list("pk", "name", "state", "publish_requested"))
    for user in (viewer, other_tenant):
        with pytest.raises(NotFound):
            _operations(img, project)[op](user)
    assert list(Image.objects.order_by("pk").values_list("pk", "name", "state", "publish_requested")) == before


def test_a_shared_user_sees_and_uses_but_does_not_manage(member, project, datastore) -> None:
    # a user of another project of the organization (user names reach the sharer's organizations)
    colleague = UserFactory(username="colleague")
    MembershipFactory(user=colleague, project=ProjectFactory(organization=project.organization))
    img = ready_image(member, project, "shared", datastore)
    assert not Image.objects.restrict(colleague, "view").filter(pk=img.pk).exists()
    services.share_image(member, img.pk, username=colleague.username)
    assert Image.objects.restrict(colleague, "view").filter(pk=img.pk).exists()
    r = client_for(colleague).get(f"/api/v1/images/{img.pk}/")
    assert r.status_code == 200 and r.json()["visibility"] == "shared"
    with pytest.raises(NotFound):
        services.delete_image(colleague, img.pk)
    services.unshare_image(member, img.pk, username=colleague.username)
    assert not Image.objects.restrict(colleague, "view").filter(pk=img.pk).exists()


def test_publication_is_requested_by_members_and_approved_by_a_cloud_admin(
    member, other_tenant, admin_user, project, datastore
) -> None:
    img = ready_image(member, project, "golden", datastore)
    with pytest.raises(PermissionDenied):
        services.set_public(member, img.pk, True)
    services.request_publish(member, img.pk)
    assert Image.objects.get(pk=img.pk).publish_requested
    services.set_public(admin_user, img.pk, True)
    img.refresh_from_db()
    assert img.public and not img.publish_requested
    body = client_for(other_tenant).get("/api/v1/images/?visibility=public").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [r["name"] for r in rows] == ["golden"]
    services.set_public(admin_user, img.pk, False)
    assert not Image.objects.restrict(other_tenant, "view").filter(pk=img.pk).exists()


def test_disabled_images_cannot_be_cloned_and_enable_brings_them_back(member, project, datastore) -> None:
    img = ready_image(member, project, "d", datastore)
    services.set_enabled(member, img.pk, False)
    with pytest.raises(Conflict, match="cannot clone an image in state disabled"):
        derive.clone_image(member, img.pk)
    with pytest.raises(Conflict, match="cannot disable"):
        services.set_enabled(member, img.pk, False)
    assert services.set_enabled(member, img.pk, True).state == ImageState.READY


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_chunks_at_one_offset_one_wins(member, project, datastore) -> None:
    import io

    img = upload.create_upload(member, project=project, name="race", size_bytes=2 << 20)
    data = b"\x01" * (1 << 20)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def send() -> None:
        from django.db import connection

        barrier.wait()
        try:
            upload.receive_chunk(member, img.pk, io.BytesIO(data), start=0, length=len(data), total=2 << 20)
            results.append("ok")
        except Conflict:
            results.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "ok"]
    assert Image.objects.get(pk=img.pk).uploaded_bytes == 1 << 20


def test_the_image_api_is_in_the_openapi_schema(member_client) -> None:
    schema = member_client.get("/api/v1/schema/?format=json").json()
    for path in ("/api/v1/images/", "/api/v1/images/{id}/upload/", "/api/v1/images/{id}/action/",
                 "/api/v1/images/datablock/", "/api/v1/images/import-ovf/", "/api/v1/images/{id}/shares/"):  # fmt: skip
        assert path in schema["paths"], path
