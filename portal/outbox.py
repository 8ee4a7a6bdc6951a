"""The transactional outbox: no committed state change ever loses the task that carries it on.

``send(task, args, queue=…)`` writes an ``OutboxMessage`` row in the caller's transaction and,
after commit, publishes it to the broker and deletes the row. When the broker is down at that
moment the row stays; ``relay`` (beat, every ``NEPHELE_OUTBOX_RELAY_S``) publishes every row
older than a few seconds, so the dispatch happens as soon as the broker is back — and the
request that made the change has already answered (a create is 202 whatever the broker does).

A row may be published twice (a crash between publish and delete, or the after-commit relay
racing the periodic one that skipped a locked row): every task is idempotent and carries the
operation's sequence number, so a second delivery finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from asgiref.local import Local
from django.db import transaction
from django.utils import timezone

from . import bulk
from .models import OutboxMessage

log = logging.getLogger(__name__)


#: task name → function turning the row's stored arguments into the message's, called when the
#: row is published (after commit, so it reads committed state); None drops the message. Compute
#: registers one for ``hostagent.run_step``: the row keeps (vm, seq), the message carries the
#: plain step order built from the committed VM.
RENDERERS: dict[str, Callable[..., Sequence[Any] | None]] = {}
#: task name → function rendering many rows' arguments at once (a list of argument lists → a
#: list of messages' arguments, None for a stale one), for one query per commit, not per row
BATCH_RENDERERS: dict[str, Callable[[list[list[Any]]], list[Sequence[Any] | None]]] = {}

#: the rows written by this thread's (or task's) open transaction, relayed together when it commits
_written = Local()


def register_renderer(
    task: str,
    render: Callable[..., Sequence[Any] | None],
    many: Callable[[list[list[Any]]], list[Sequence[Any] | None]] | None = None,
) -> None:
    RENDERERS[task] = render
    if many is not None:
        BATCH_RENDERERS[task] = many


def send(task: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, *, queue: str = "") -> None:
    """Queue ``task`` to run after the current transaction commits (and only if it does).

    Every row a transaction writes is published by one relay after its commit (one lock, one
    render per task type, one delete), however many rows it wrote: a sweep placing fifty VMs
    in one commit relays their fifty step orders together."""
    bulk.add(OutboxMessage(task=task, args=list(args), kwargs=dict(kwargs or {}), queue=queue), after=_inserted)


def _inserted(rows: list[OutboxMessage]) -> None:
    pending: list[int] | None = getattr(_written, "pks", None)
    if pending is None:
        pending = _written.pks = []
    pending.extend(row.pk for row in rows)
    # one callback per insert, as a rolled-back savepoint drops its own; the first to run after
    # the commit takes every row written (rows of rolled-back savepoints simply are not found)
    transaction.on_commit(_relay_written, robust=True)


def _relay_written() -> None:
    pks: list[int] = getattr(_written, "pks", None) or []
    if pks:
        _written.pks = []
        relay_many(pks)


def _publish(row: OutboxMessage, args: Sequence[Any] | None) -> None:
    from .celery import app

    if app.conf.task_always_eager:  # tests and scripts running tasks in-process
        task = app.tasks[row.task]
        if row.queue:
            task.apply_async(tuple(args or ()), row.kwargs, queue=row.queue)
        else:
            task.apply_async(tuple(args or ()), row.kwargs)
    else:  # by name: the web process need not import the task's module
        app.send_task(row.task, args=list(args or ()), kwargs=row.kwargs, queue=row.queue or None)


def _render(rows: list[OutboxMessage]) -> list[tuple[OutboxMessage, Sequence[Any] | None, str]]:
    """(row, the message's arguments, what to do: "send", "drop" — a renderer's None: stale by
    now, a newer operation took over — or "keep": its renderer failed, logged, tried again by the
    periodic relay) for each row. A batch renderer that fails falls back to row by row, so one
    poison row never holds the others back."""
    out: list[tuple[OutboxMessage, Sequence[Any] | None, str]] = []
    by_task: dict[str, list[OutboxMessage]] = {}
    for row in rows:
        by_task.setdefault(row.task, []).append(row)
    for task, group in by_task.items():
        if task in BATCH_RENDERERS:
            try:
                rendered = BATCH_RENDERERS[task]([list(r.args) for r in group])
            except Exception:  # noqa: BLE001 — render each on its own below
                log.exception("outbox: rendering %d %s rows together failed; one by one", len(group), task)
            else:
                out.extend((r, a, "send" if a is not None else "drop") for r, a in zip(group, rendered, strict=True))
                continue
        for r in group:
            if task not in RENDERERS:
                out.append((r, r.args, "send"))
                continue
            try:
                a = RENDERERS[task](*r.args)
            except Exception:  # noqa: BLE001 — a poison row: kept and logged, the others go on
                log.exception("outbox: rendering %s failed; kept for the relay", r)
                out.append((r, None, "keep"))
            else:
                out.append((r, a, "send" if a is not None else "drop"))
    return out


def relay_many(pks: list[int]) -> tuple[int, bool]:
    """Publish these rows (those still there and not being sent by another relay) and delete
    them, in one transaction: (rows sent or dropped as stale, whether the broker failed). At the
    first broker error the rows not yet sent stay for ``relay``."""
    done: list[int] = []
    failed = False
    with transaction.atomic():
        rows = list(OutboxMessage.objects.select_for_update(skip_locked=True).filter(pk__in=pks).order_by("pk"))
        if not rows:
            return 0, False  # sent already, or being sent by the periodic relay
        for row, args, what in _render(rows):
            if what == "keep":
                continue
            if what == "send":
                try:
                    _publish(row, args)
                except Exception as exc:  # noqa: BLE001 — kombu/redis/amqp errors alike: keep the row
                    OutboxMessage.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, last_error=str(exc)[:500])
                    log.warning("outbox: %s not sent yet (%s); the relay retries", row, exc)
                    failed = True
                    break
            done.append(row.pk)
        OutboxMessage.objects.filter(pk__in=done).delete()
    return len(done), failed


def relay(older_than_s: float = 2.0, batch: int = 500) -> dict[str, int]:
    """Publish rows the after-commit relay could not (broker down, process killed). Stops at the
    first broker error: the next run tries again."""
    before = timezone.now() - timedelta(seconds=older_than_s)
    pks = list(OutboxMessage.objects.filter(created_at__lt=before).order_by("pk").values_list("pk", flat=True)[:batch])
    sent, _failed = relay_many(pks) if pks else (0, False)
    return {"sent": sent, "waiting": OutboxMessage.objects.count()}
