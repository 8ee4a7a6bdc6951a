"""Error boundaries for periodic sweeps: one bad item is skipped and reported, never the sweep.

A periodic task (the scheduler's sweep, probes, reconciliation, datastore monitoring …) walks
many rows; an exception from one of them (a poison row, a driver bug, a deadlock victim) must
not stop the others, and the next run must try it again. ``each`` runs ``work`` for every item in
its own transaction (a savepoint when the caller holds one), logs a failure with its traceback
and returns what happened, so the task's result in Celery shows the failed items by id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.db import transaction

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


def each(name: str, items: Iterable[T], work: Callable[[T], object], *, key: Callable[[T], object] = str) -> Sweep[T]:
    """Run ``work(item)`` for every item inside its own error boundary (see the module doc)."""
    sweep: Sweep[T] = Sweep(name)
    for item in items:
        try:
            with transaction.atomic():
                work(item)
        except Exception as exc:  # noqa: BLE001 — the boundary: report, skip, go on
            label = str(key(item))
            sweep.failed[label] = f"{type(exc).__name__}: {exc}"[:500]
            log.exception("%s: item %s failed; skipped until the next run", name, label)
        else:
            sweep.done += 1
    return sweep
