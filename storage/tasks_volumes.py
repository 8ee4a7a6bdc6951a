"""Celery tasks of volumes and VM disks: load by primary key, do the file or driver work, finish
through ``storage.services.volumes`` (CONVENTIONS §7).

The file and driver work itself runs where the volume lives — the agent of its VM's host
(``hostagent.run_volume_step``, ``hostagent.save_disk`` on ``host.<pk>``), else the default
queue — from the plain order in the message; the reports come back here. Each task carries the operation's ``seq``: a stale or repeated
message finds nothing to do, and every step below is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from portal.celery import RETRY_TRANSIENT
from specs.codec import encode

from . import hostops, volumeops
from .services import disks as disk_services
from .services import volumes as services

log = logging.getLogger(__name__)


@shared_task(name="storage.run_volume_step", acks_late=True, **RETRY_TRANSIENT)
def run_volume_step(volume_id: int, seq: int) -> str:
    """Carry out the volume's operation ``seq`` in this process and report it (what the agent
    does with ``hostagent.run_volume_step``)."""
    order = services.volume_order(volume_id, seq)
    if order is None:
        return "stale"
    error, size = volumeops.run(order)
    services.complete_volume_step(volume_id, seq, error=error, size_bytes=size)
    return error or "ok"


def render_volume_step(volume_id: int, seq: int) -> tuple[dict[str, Any]] | None:
    """The outbox's renderer of ``hostagent.run_volume_step``: the order, from the committed row."""
    order = services.volume_order(volume_id, seq)
    return None if order is None else (encode(order),)


@shared_task(name="storage.volume_step_done", acks_late=True, **RETRY_TRANSIENT)
def volume_step_done(volume_id: int, seq: int, error: str, size_bytes: int) -> str:
    """An agent's report of a volume step; a stale or repeated one is refused."""
    vol = services.complete_volume_step(volume_id, seq, error=error, size_bytes=size_bytes)
    return "stale" if vol is None else vol.state


@shared_task(name="storage.disk_saved", acks_late=True, **RETRY_TRANSIENT)
def disk_saved(disk_id: int, actor_id: int | None, name: str, datastore_id: int, dest: str, error: str) -> str:
    """The agent copied a VM disk into ``dest`` (or failed): register the image."""
    image = disk_services.finish_save_disk(disk_id, actor_id, name, datastore_id, dest, error)
    return error or f"image {getattr(image, 'pk', None)}"


@shared_task(name="storage.remove_disk_files", acks_late=True, **RETRY_TRANSIENT)
def remove_disk_files(paths: list[str]) -> int:
    """Remove a terminated VM's volatile disk files (idempotent: a missing file is fine)."""
    for path in paths:
        hostops.remove(path)
    return len(paths)
