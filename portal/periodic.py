"""Error boundaries for periodic sweeps: one bad item is skipped and reported, never the sweep.

A periodic task (the scheduler's sweep, probes, reconciliation, datastore monitoring …) walks
many rows; an exception from one of them (a poison row, a driver bug, a deadlock victim) must
not stop the others, and the next run must try it again. ``each`` runs ``work`` for every item in
its own transaction (a savepoint when the caller holds one), logs a failure with its traceback
and returns what happened, so the task's result in Celery shows the failed items by id.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.db import connection, transaction

from . import bulk

T = TypeVar("T")
log = logging.getLogger("nephele.periodic")


@dataclass
class Sweep(Generic[T]):
    """The outcome of one sweep: items done, and the failed ones with their error."""

    name: str
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def as_result(self) -> dict[str, object]:
        return {"sweep": self.name, "done": self.done, "failed": self.failed}


def each(
    name: str,
    items: Iterable[T],
    work: Callable[[T], object],
    *,
    key: Callable[[T], object] = str,
    chunk: int = 1,
) -> Sweep[T]:
    """Run ``work(item)`` for every item inside its own error boundary (see the module doc).

    ``chunk`` > 1 commits that many items together (each still in a savepoint of its own, so a
    failing item is rolled back alone): one commit per chunk instead of one per item, for sweeps
    over thousands of rows (the scheduler's). A chunk whose commit fails keeps none of its items
    and reports them all."""
    sweep: Sweep[T] = Sweep(name)
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            _run_chunk(sweep, batch, work, key, nested=chunk > 1)
            batch = []
    if batch:
        _run_chunk(sweep, batch, work, key, nested=chunk > 1)
    return sweep


def _run_chunk(sweep: Sweep[T], batch: list[T], work: Callable[[T], object], key: Callable[[T], object], *,
               nested: bool) -> None:  # fmt: skip
    done, failed = 0, {}
    try:
        with transaction.atomic(), bulk.collecting() as rows:
            for item in batch:
                mark = rows.mark()
                try:
                    with transaction.atomic(savepoint=nested):
                        work(item)
                except Exception as exc:  # noqa: BLE001 — the boundary: report, skip, go on
                    rows.discard_from(mark)  # what the failed item added to the chunk's inserts
                    label = str(key(item))
                    failed[label] = f"{type(exc).__name__}: {exc}"[:500]
                    log.exception("%s: item %s failed; skipped until the next run", sweep.name, label)
                else:
                    done += 1
    except Exception as exc:  # noqa: BLE001 — the chunk's commit failed: none of it was kept
        log.exception("%s: a chunk of %d failed to commit; retried at the next run", sweep.name, len(batch))
        failed = {str(key(item)): f"{type(exc).__name__}: {exc}"[:500] for item in batch}
        done = 0
    sweep.done += done
    sweep.failed.update(failed)


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Run a sweep alone across every process: yields True while this process holds the sweep's
    PostgreSQL advisory lock (a session lock, so it is released when the block ends or the
    connection dies), False when another process holds it (skip: that sweep does the work).
    Without PostgreSQL (the embedded SQLite of ``make run``, one process) it always yields True."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = zlib.crc32(f"nephele.sweep.{name}".encode())
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
        mine = bool(cur.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [key])
