"""Every write of the REST API goes through a service (CONVENTIONS §2), checked on the URL conf:
no ViewSet may reach DRF's default ``perform_create`` / ``perform_update`` / ``perform_destroy``
(``serializer.save()``, ``instance.delete()``: no validation by the service, no access gate on
references, no audit row), and no ViewSet method calls ``.save(`` itself. A new endpoint that
writes directly fails here."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest
from rest_framework import mixins

from portal.urls import api_router

# (mixin, the action it answers with, the hook that writes by default)
WRITES = [
    (mixins.CreateModelMixin, "create", "perform_create"),
    (mixins.UpdateModelMixin, "update", "perform_update"),
    (mixins.UpdateModelMixin, "partial_update", "perform_update"),
    (mixins.DestroyModelMixin, "destroy", "perform_destroy"),
]
VIEWSETS = sorted({(prefix, viewset) for prefix, viewset, _basename in api_router.registry}, key=lambda r: r[0])


def _default_writes(viewset: type) -> list[str]:
    """The write actions of ``viewset`` that end in DRF's own ``perform_*``."""
    out = []
    for mixin, action_name, hook in WRITES:
        if not issubclass(viewset, mixin):
            continue
        answers, via = getattr(viewset, action_name), action_name
        if via == "partial_update" and answers is mixins.UpdateModelMixin.partial_update:
            answers, via = viewset.update, "update"  # DRF's partial_update calls update
        if answers is getattr(mixin, via) and getattr(viewset, hook) is getattr(mixin, hook):
            out.append(f"{action_name} → {mixin.__name__}.{hook}")
    return out


def _saves(viewset: type) -> list[str]:
    """Methods defined by the project's ViewSets (not DRF's) that call ``<something>.save(``."""
    found = []
    for klass in viewset.__mro__:
        if klass.__module__.split(".")[0] not in ("compute", "storage", "images", "network", "monitoring", "tenants"):
            continue
        for name, fn in vars(klass).items():
            if not inspect.isfunction(fn):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "save":
                    found.append(f"{klass.__name__}.{name}")
    return found


def test_the_registry_is_walked() -> None:
    names = {prefix for prefix, _v in VIEWSETS}
    assert {"templates", "clusters", "boot-images", "webhooks", "organizations", "projects"} <= names


@pytest.mark.parametrize("prefix,viewset", VIEWSETS, ids=[p for p, _v in VIEWSETS])
def test_no_viewset_writes_without_a_service(prefix: str, viewset: Any) -> None:
    assert _default_writes(viewset) == [], f"/api/v1/{prefix}/ writes with DRF's default (serializer.save())"
    assert _saves(viewset) == [], f"/api/v1/{prefix}/ calls .save() in the view; call a service"


def test_the_check_catches_a_direct_write() -> None:
    from rest_framework import viewsets

    class Sneaky(viewsets.ModelViewSet):
        pass

    class Saves(viewsets.ModelViewSet):
        def perform_create(self, serializer: Any) -> None:
            serializer.save(owner=self.request.user)

    Saves.__module__ = "compute.api.views"
    assert len(_default_writes(Sneaky)) == 4
    assert _saves(Saves) == ["Saves.perform_create"]
