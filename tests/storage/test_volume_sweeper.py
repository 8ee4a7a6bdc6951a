"""The transient-state sweeper for volumes: a step whose message was lost is re-queued with the
same sequence number and completes; one that never progresses is given up after
NEPHELE_STEP_MAX_TRIES, with its quota given back — never left in a transient state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from monitoring.models import Event
from storage.models import Volume
from storage.services import volumes as svc
from storage.tasks import sweep_stuck_volumes
from tenants import quotas

from .volumes_support import MIB, run

GIB = 1024**3


def _age(vol: Volume, settings: Any) -> None:
    past = timezone.now() - timedelta(seconds=settings.NEPHELE_STEP_DEADLINE_S + 1)
    Volume.objects.filter(pk=vol.pk).update(operation_at=past)


def _gb(project: Any) -> int:
    return next(q.used for q in quotas.usage(project) if q.resource == "volume_gb")


def test_a_lost_step_is_redriven_and_completes(eager: Any, member: Any, project: Any, settings: Any) -> None:
    vol = run(eager, svc.create_volume, member, project=project, name="data", size_bytes=64 * MIB)
    svc.grow_volume(member, vol.pk, GIB + MIB)  # its message is lost: nothing runs it
    vol.refresh_from_db()
    seq = vol.operation_seq
    assert vol.state == "resizing"

    assert sweep_stuck_volumes()["done"] == 0  # within its deadline: left alone
    _age(vol, settings)
    result = run(eager, sweep_stuck_volumes)
    assert result == {"sweep": "sweep_stuck_volumes", "done": 1, "failed": {}}
    vol.refresh_from_db()
    assert (vol.state, vol.operation, vol.size_bytes) == ("available", "", GIB + MIB)
    assert vol.operation_seq == seq  # the same step, not a new operation
    assert Event.objects.filter(type="volume.step_redriven", object_id=str(vol.pk)).count() == 1


def test_a_step_that_never_progresses_is_given_up(eager: Any, member: Any, project: Any, settings: Any) -> None:
    settings.NEPHELE_STEP_MAX_TRIES = 2
    vol = run(eager, svc.create_volume, member, project=project, name="data", size_bytes=64 * MIB)
    svc.grow_volume(member, vol.pk, GIB + MIB)
    assert _gb(project) == 2
    for attempt in (1, 2):
        _age(vol, settings)
        sweep_stuck_volumes()  # re-queued, and lost again
        vol.refresh_from_db()
        assert (vol.state, vol.operation_tries) == ("resizing", attempt)
    _age(vol, settings)
    sweep_stuck_volumes()
    vol.refresh_from_db()
    assert (vol.state, vol.operation, vol.size_bytes) == ("available", "", 64 * MIB)
    assert "made no progress in 3 ×" in vol.state_message
    assert _gb(project) == 1  # the grow's quota is given back
