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

from django.db import transaction
from django.utils import timezone

from .models import OutboxMessage

log = logging.getLogger(__name__)


#: task name → function turning the row's stored arguments into the message's, called when the
#: row is published (after commit, so it reads committed state); None drops the message. Compute
#: registers one for ``hostagent.run_step``: the row keeps (vm, seq), the message carries the
#: plain step order built from the committed VM.
RENDERERS: dict[str, Callable[..., Sequence[Any] | None]] = {}


def register_renderer(task: str, render: Callable[..., Sequence[Any] | None]) -> None:
    RENDERERS[task] = render


def send(task: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, *, queue: str = "") -> None:
    """Queue ``task`` to run after the current transaction commits (and only if it does)."""
    row = OutboxMessage.objects.create(task=task, args=list(args), kwargs=dict(kwargs or {}), queue=queue)
    transaction.on_commit(lambda: relay_one(row.pk), robust=True)


def _publish(row: OutboxMessage) -> None:
    from .celery import app

    args: Sequence[Any] | None = row.args
    if row.task in RENDERERS:
        args = RENDERERS[row.task](*row.args)
        if args is None:
            return  # stale by now (a newer operation took over): nothing to send
    if app.conf.task_always_eager:  # tests and scripts running tasks in-process
        task = app.tasks[row.task]
        if row.queue:
            task.apply_async(tuple(args or ()), row.kwargs, queue=row.queue)
        else:
            task.apply_async(tuple(args or ()), row.kwargs)
    else:  # by name: the web process need not import the task's module
        app.send_task(row.task, args=list(args or ()), kwargs=row.kwargs, queue=row.queue or None)


def relay_one(pk: int) -> bool:
    """Publish one row and delete it; on a broker error the row stays for ``relay``."""
    with transaction.atomic():
        row = OutboxMessage.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
        if row is None:
            return False  # sent already, or being sent by the periodic relay
        try:
            _publish(row)
        except Exception as exc:  # noqa: BLE001 — kombu/redis/amqp errors alike: keep the row
            OutboxMessage.objects.filter(pk=pk).update(attempts=row.attempts + 1, last_error=str(exc)[:500])
            log.warning("outbox: %s not sent yet (%s); the relay retries", row, exc)
            return False
        row.delete()
    return True


def relay(older_than_s: float = 2.0, batch: int = 500) -> dict[str, int]:
    """Publish rows the after-commit relay could not (broker down, process killed). Stops at the
    first broker error: the next run tries again."""
    before = timezone.now() - timedelta(seconds=older_than_s)
    sent = 0
    pks = list(OutboxMessage.objects.filter(created_at__lt=before).values_list("pk", flat=True)[:batch])
    for pk in pks:
        if relay_one(pk):
            sent += 1
        elif OutboxMessage.objects.filter(pk=pk).exists():
            break  # the broker is still away
    return {"sent": sent, "waiting": OutboxMessage.objects.count()}
