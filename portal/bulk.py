"""Append-only rows a sweep writes in bulk: one INSERT per table per chunk, not one per row.

The scheduler's sweep places fifty VMs per commit; each placement writes a state change, an
event, an outbox row and a placement record. Inside ``collecting()`` those rows (``add``) are
held and inserted together at the end of the block — still inside the caller's transaction, so
they commit or roll back with everything else — and each row's ``after`` callback then runs once
for all the rows it was given with (the events' webhook deliveries, the outbox's relay), with
their primary keys set. Outside ``collecting()`` ``add`` inserts at once.

A sweep item that fails is rolled back to its savepoint; ``discard_from(mark)`` drops the rows
it had added, so nothing of a failed item is written. Code that must read a row right after
writing it does not use ``add``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from asgiref.local import Local
from django.db import models

After = Callable[[list[Any]], None]
P = ParamSpec("P")
R = TypeVar("R")

_state = Local()


class Batch:
    """The rows held by one ``collecting()`` block, in the order they were added."""

    def __init__(self) -> None:
        self.rows: list[tuple[models.Model, After | None]] = []

    def mark(self) -> int:
        return len(self.rows)

    def discard_from(self, mark: int) -> None:
        del self.rows[mark:]

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        by_model: dict[type[models.Model], list[models.Model]] = {}
        afters: dict[After, list[models.Model]] = {}
        for obj, after in rows:
            by_model.setdefault(type(obj), []).append(obj)
            if after is not None:
                afters.setdefault(after, []).append(obj)
        for model, objs in by_model.items():
            model._default_manager.bulk_create(objs)  # PostgreSQL and SQLite set the primary keys
        for after, objs in afters.items():
            after(objs)


def add(obj: models.Model, after: After | None = None) -> None:
    """Insert ``obj`` (now, or with the enclosing ``collecting()`` block's rows), then
    ``after([obj, …])``."""
    batch: Batch | None = getattr(_state, "batch", None)
    if batch is None:
        obj.save(force_insert=True)
        if after is not None:
            after([obj])
    else:
        batch.rows.append((obj, after))


def current() -> Batch | None:
    """The open ``collecting()`` block's batch, if any."""
    return getattr(_state, "batch", None)


def collected(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` inside ``collecting()`` (under ``transaction.atomic``, which must wrap it)."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with collecting():
            return fn(*args, **kwargs)

    return inner


@contextmanager
def collecting() -> Iterator[Batch]:
    """Hold ``add``'s rows until the block ends, then insert them together (a nested block joins
    the outer one). Use it inside a transaction: the rows commit with it."""
    outer: Batch | None = getattr(_state, "batch", None)
    if outer is not None:
        yield outer
        return
    batch = _state.batch = Batch()
    try:
        yield batch
        batch.flush()
    finally:
        _state.batch = None
