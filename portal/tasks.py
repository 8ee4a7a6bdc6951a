"""The control plane's own periodic work."""

from __future__ import annotations

from celery import shared_task

from . import outbox


@shared_task(name="portal.relay_outbox")
def relay_outbox() -> dict[str, int]:
    """Periodic (beat): publish outbox rows whose after-commit publish failed (broker down)."""
    return outbox.relay()
