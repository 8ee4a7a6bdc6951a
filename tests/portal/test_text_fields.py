"""Text in request bodies (portal/api.py ``Text``): the schema says what is refused, so a
client that follows the schema is never surprised by a 400 and one that does not gets a 400
naming the field, with nothing changed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from compute.models import BootImage
from network.models import VirtualNetwork
from tests.conftest import client_for
from tests.factories import BootImageFactory
from tests.network.factories import make_network


def _schema(client: Any) -> dict[str, Any]:
    return client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]


@pytest.mark.parametrize("name", ["\x1f", " \t", "\u3000\x85", "\ufeff"])
def test_a_name_of_white_space_only_is_a_400_naming_name(admin_user: Any, project: Any, name: str) -> None:
    net = make_network(admin_user, project)
    resp = client_for(admin_user).patch(f"/api/v1/networks/{net.pk}/", {"name": name}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "name", resp.content
    assert VirtualNetwork.objects.get(pk=net.pk).name == "net"


def test_the_schema_says_a_required_text_needs_a_visible_character(member: Any) -> None:
    schemas = _schema(client_for(member))
    pattern = schemas["PatchedNetworkUpdateRequest"]["properties"]["name"]["pattern"]
    assert re.search(pattern, " a ") and not re.search(pattern, " \t") and not re.search(pattern, "a\x00")
    # a field with a pattern of its own keeps it (the model's name rule)
    assert schemas["NetworkRequest"]["properties"]["name"]["pattern"].startswith("^[A-Za-z0-9]")


@pytest.mark.parametrize("field", ["kernel_path", "initrd_path", "disk_path"])
def test_a_boot_image_path_is_absolute_or_blank(admin_user: Any, project: Any, field: str) -> None:
    img = BootImageFactory(project=project, owner=admin_user)
    before = getattr(img, field)
    client = client_for(admin_user)
    resp = client.patch(f"/api/v1/boot-images/{img.pk}/", {field: "vmlinuz"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == field, resp.content
    assert getattr(BootImage.objects.get(pk=img.pk), field) == before
    assert client.patch(f"/api/v1/boot-images/{img.pk}/", {field: ""}, format="json").status_code == 200
    schema = _schema(client)["PatchedBootImageRequest"]["properties"][field]
    assert any(option.get("pattern", "").startswith("^/") for option in schema["oneOf"]), schema


def test_the_schema_says_text_holds_no_nul_and_a_nul_is_a_400_naming_the_field(admin_user: Any, project: Any) -> None:
    client = client_for(admin_user)
    pattern = _schema(client)["PatchedNetworkUpdateRequest"]["properties"]["dns"]["pattern"]
    assert re.search(pattern, "") and re.search(pattern, "10.0.0.2") and not re.search(pattern, "1\x00")
    net = make_network(admin_user, project)
    resp = client.patch(f"/api/v1/networks/{net.pk}/", {"dns": "10.0.0.2\x00"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "dns", resp.content
    assert VirtualNetwork.objects.get(pk=net.pk).dns == net.dns


def test_bodies_are_documented_as_json_except_uploads(member: Any) -> None:
    """Forms cannot say null or tell 1 from "1": the documented contract is JSON (portal/openapi.py)."""
    paths = client_for(member).get("/api/v1/schema/?format=json").json()["paths"]
    media = {
        (method, path): tuple(op["requestBody"]["content"])
        for path, ops in paths.items()
        for method, op in ops.items()
        if isinstance(op, dict) and "requestBody" in op
    }
    assert media.pop(("post", "/api/v1/images/import-ovf/")) == ("multipart/form-data",)
    assert media.pop(("put", "/api/v1/images/{id}/upload/")) == ("application/octet-stream",)
    assert len(media) > 50 and set(media.values()) == {("application/json",)}
