"""Models shared by the managers: the abstract ``Operated``, and the transactional outbox's one
table (``portal/outbox.py``)."""

from __future__ import annotations

from typing import Any

from django.db import models


class Operated(models.Model):
    """Abstract: the operation in flight on a managed resource.

    The concrete model declares ``state`` and ``previous_state`` (CharFields with its state
    choices); they are annotated here so the functions below are typed.
    """

    operation = models.CharField(max_length=16, blank=True, help_text="the action in flight, '' when idle")
    operation_args = models.JSONField(default=dict, blank=True)
    operation_seq = models.PositiveIntegerField(default=0, help_text="bumped per operation; tasks carry it")
    operation_at = models.DateTimeField(
        null=True, blank=True, help_text="when the operation's current step was queued (the sweeper's clock)"
    )
    operation_tries = models.PositiveSmallIntegerField(
        default=0, help_text="times the sweeper re-queued the current step because it made no progress"
    )

    state: Any
    previous_state: Any

    class Meta:
        abstract = True

    @property
    def busy(self) -> bool:
        """An operation is in flight."""
        return bool(self.operation)


class OutboxMessage(models.Model):
    """A task to send, written in the same transaction as the state change that needs it and
    relayed to the broker after commit (``portal/outbox.py``): a committed change never loses its
    dispatch, whatever the broker does at that moment."""

    task = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    queue = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)} → {self.queue or 'default'}"
