"""Rows the other managers add to the authorization matrices.

Each manager keeps its own rows in ``tests/<app>/authz*.py`` (one module per area) (so the matrices grow without one
shared file): ``API`` and ``UI`` lists of (method, path, body, expected) rows, and
``world(ids, users, project, member, admin_user)`` that creates the objects its rows name
(adding placeholders to ``ids``). ``DENIED_CHANGES`` (optional) as in the UI matrix.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

APPS = ("compute", "storage", "images", "network")
TESTS = Path(__file__).resolve().parent.parent


def _modules() -> list[ModuleType]:
    out = []
    for app in APPS:
        for f in sorted((TESTS / app).glob("authz*.py")):
            out.append(importlib.import_module(f"tests.{app}.{f.stem}"))
    return out


MODULES = _modules()


def api_rows() -> list[tuple[str, str, dict[str, Any] | None, dict[str, int]]]:
    return [row for m in MODULES for row in getattr(m, "API", [])]


def ui_rows() -> list[tuple[str, str, dict[str, Any] | None, dict[str, int]]]:
    return [row for m in MODULES for row in getattr(m, "UI", [])]


def denied_changes() -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for m in MODULES:
        out.update(getattr(m, "DENIED_CHANGES", {}))
    return out


def _owner(request: Any) -> ModuleType | None:
    """The module whose row this parametrized test runs (None for the core rows)."""
    params = getattr(getattr(request, "node", None), "callspec", None)
    if params is None:
        return None
    key = (params.params.get("method"), params.params.get("path"), params.params.get("body"))
    for m in MODULES:
        for method, path, body, _expected in [*getattr(m, "API", []), *getattr(m, "UI", [])]:
            if (method, path, body) == key:
                return m
    return None


def build_world(
    ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any, request: Any = None
) -> None:
    """Create the objects of the module whose row runs (every module's when ``request`` is None);
    core rows need none of them, and building all of them for every row costs minutes."""
    owner = _owner(request) if request is not None else None
    for m in MODULES:
        if hasattr(m, "world") and (request is None or m is owner):
            m.world(ids, users, project, member, admin_user)
