"""Who still uses an object: the 409 a delete answers instead of a database ``ProtectedError``.

Shared by the template, boot image and cluster services. The relations are read from the
models themselves, so a manager that adds a protecting foreign key (or a many-to-many link
whose meaning would silently widen when the row goes) is counted without touching this code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models
from django.db.models.deletion import ProtectedError, RestrictedError

from portal.errors import Conflict

from ..models import VirtualMachine
from ..states import VMState

LIMIT = 5


def _referrers(obj: models.Model) -> Iterator[tuple[Any, str]]:
    """(queryset of referring rows, label) for every relation that keeps ``obj`` from being
    deleted: PROTECT / RESTRICT foreign keys and many-to-many links. DONE VMs are left out:
    they are history (accounting), and the services clear their references."""
    for rel in obj._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and rel.is_relation):
            continue
        related = rel.related_model
        field = getattr(rel, "field", None)
        if related is None or field is None or related._meta.auto_created:  # m2m through rows
            continue
        if not rel.many_to_many and getattr(rel, "on_delete", None) not in (models.PROTECT, models.RESTRICT):
            continue
        qs = related._default_manager.filter(**{field.name: obj})
        if related is VirtualMachine:
            qs = qs.exclude(state=VMState.DONE)
        yield qs, str(related._meta.verbose_name)


def users_of(obj: models.Model) -> list[str]:
    """Readable names of the rows that still use ``obj`` (at most a few per relation)."""
    out: list[str] = []
    for qs, label in _referrers(obj):
        rows = list(qs.order_by("pk")[: LIMIT + 1])
        out += [f"{label} {row}" for row in rows[:LIMIT]]
        if len(rows) > LIMIT:
            out.append(f"more {label}s")
    return out


def refuse_if_used(obj: models.Model, what: str, *, field: str | None = None) -> None:
    """Raise ``Conflict`` naming who uses ``obj`` (``what`` says what it is: "boot image x")."""
    users = users_of(obj)
    if users:
        raise Conflict(f"{what} is used by {', '.join(users)}", field=field)


def release_done_vms(obj: models.Model, field_name: str) -> int:
    """Clear DONE VMs' reference ``field_name`` to ``obj`` (it describes a VM that is gone), so
    the row can be deleted; returns how many were cleared (the caller's audit row says it)."""
    return VirtualMachine.objects.filter(**{field_name: obj}, state=VMState.DONE).update(**{field_name: None})


def delete_row(obj: models.Model, what: str, *, field: str | None = None) -> None:
    """Delete ``obj``; a protecting reference that appeared meanwhile is a 409, never a 500."""
    try:
        obj.delete()
    except (ProtectedError, RestrictedError) as exc:
        names = ", ".join(
            str(o)
            for o in list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)[:LIMIT]
        )
        raise Conflict(f"{what} is used by {names}", field=field) from None
