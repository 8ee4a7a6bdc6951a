"""Abstract models shared by the managers (no tables of its own: ``portal`` has no migrations)."""

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
