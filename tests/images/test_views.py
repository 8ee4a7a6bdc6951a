"""Image pages: list with filters and search, detail with actions and sharing, upload form."""

from __future__ import annotations

from typing import Any

from django.test import Client

from images.models import Image, ImageState
from images.services import share_image

from .factories import ready_image


def _client(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_list_filters_by_type_format_state_visibility_and_search(member, project, datastore, other_tenant) -> None:
    a = ready_image(member, project, "alpha", datastore)
    ready_image(member, project, "beta", datastore, fmt="raw")
    c = _client(member)
    page = c.get("/images/").content.decode()
    assert "alpha" in page and "beta" in page and 'href="/images/"' in page  # the nav link
    assert "beta" not in c.get("/images/?format=qcow2").content.decode()
    anything = c.get("/images/?type=&format=&state=&visibility=&search=").content.decode()  # the form's "any"
    assert "alpha" in anything and "beta" in anything
    assert "alpha" not in c.get("/images/?search=bet").content.decode()
    assert "alpha" not in c.get("/images/?state=disabled").content.decode()
    share_image(member, a.pk, project_id=other_tenant.memberships.get().project_id)
    shared = c.get("/images/?visibility=shared").content.decode()
    assert "alpha" in shared and "beta" not in shared
    # the stranger sees the shared one only
    theirs = _client(other_tenant).get("/images/").content.decode()
    assert "alpha" in theirs and "beta" not in theirs


def test_detail_actions_and_sharing_through_the_page(
    member, project, datastore, django_capture_on_commit_callbacks
) -> None:
    img = ready_image(member, project, "gamma", datastore)
    c = _client(member)
    page = c.get(f"/images/{img.pk}/").content.decode()
    assert "Disable" in page and "Convert (new image)" in page and "Request publication" in page
    c.post(f"/images/{img.pk}/action/", {"action": "disable"})
    assert Image.objects.get(pk=img.pk).state == ImageState.DISABLED
    c.post(f"/images/{img.pk}/edit/", {"name": "gamma2", "description": "d", "type": "datablock"})
    img.refresh_from_db()
    assert (img.name, img.type, img.persistent) == ("gamma2", "datablock", False)
    r = c.post(f"/images/{img.pk}/share/", {"user": "nobody-here"}, follow=True)
    assert "user not found" in r.content.decode()
    c.post(f"/images/{img.pk}/action/", {"action": "request_publish"})
    assert Image.objects.get(pk=img.pk).publish_requested
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(f"/images/{img.pk}/action/", {"action": "delete"})
    assert r.status_code == 302 and not Image.objects.filter(pk=img.pk).exists()


def test_upload_page_carries_the_chunked_uploader(member, project, datastore) -> None:
    c = _client(member)
    page = c.get("/images/upload/").content.decode()
    assert "js/images-upload.js" in page and 'id="image-upload-form"' in page and f'data-project="{project.pk}"' in page


def test_image_list_api_has_no_n_plus_one(member, member_client, project, datastore) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert member_client.get("/api/v1/images/").status_code == 200
        return len(ctx.captured_queries)

    ready_image(member, project, "one", datastore)
    count()  # warm the content-type cache
    few = count()
    for i in range(4):
        ready_image(member, project, f"more{i}", datastore)
    assert count() == few


def test_the_image_list_pages_sorts_and_its_queries_do_not_grow(member: Any, project: Any, datastore: Any) -> None:
    from tenants.quotas import set_limit
    from tests.conftest import page_queries

    set_limit(project, "images", -1)
    c = _client(member)
    for i in range(3):
        ready_image(member, project, f"img{i:02d}", datastore=datastore, size="1M")
    few, page = page_queries(c, "/images/?per_page=25&sort=-name")
    assert "1–3 of 3" in page
    for i in range(3, 30):
        ready_image(member, project, f"img{i:02d}", datastore=datastore, size="1M")
    many, page = page_queries(c, "/images/?per_page=25&sort=-name")
    assert many == few
    assert "1–25 of 30" in page and page.index(">img29<") < page.index(">img28<")
    assert ">img04<" not in page and ">img04<" in page_queries(c, "/images/?per_page=25&sort=-name&page=2")[1]


def test_the_image_list_lets_each_user_choose_its_columns(member: Any, project: Any, datastore: Any) -> None:
    ready_image(member, project, "gamma")
    c = _client(member)
    page = c.get("/images/").content.decode()
    assert 'id="images-columns"' in page and "<style>" not in page
    page = c.get("/images/?columns=1&show=type&show=size&show=visibility").content.decode()
    assert '[data-table="images"] .c-format, [data-table="images"] .c-project { display: none; }' in page
    assert "gamma" in page, "the chooser's parameters are no filter"
    assert '<td class="c-format">' in page and '<td class="c-project">' in page
    assert "display: none" in c.get("/images/?search=gam").content.decode(), "kept in the session"
