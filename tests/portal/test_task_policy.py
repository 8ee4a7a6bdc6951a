"""Every Celery task survives transient faults (issue 11): a control-plane task that is not
periodic retries database and broker errors with back-off and is acknowledged only when done;
a periodic task's retry is its next run; the agent's step tasks are acknowledged late, so a
killed agent's step is redelivered."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db.utils import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

import compute.tasks  # noqa: F401  (registers every app's tasks, the agent's included)
from hostagent.celery import app as agent_app
from portal.celery import app

PERIODIC = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
AGENT_STEPS = {"hostagent.run_step", "hostagent.run_volume_step", "hostagent.save_disk"}


def _ours() -> dict[str, Any]:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def _control_plane() -> list[str]:
    return sorted(n for n in _ours() if not n.startswith("hostagent.") and n not in PERIODIC)


def test_the_walk_sees_every_app() -> None:
    names = _ours()
    for prefix in ("compute.", "storage.", "network.", "images.", "monitoring.", "portal.", "hostagent."):
        assert any(n.startswith(prefix) for n in names), prefix
    assert set(names) >= PERIODIC, PERIODIC - set(names)


@pytest.mark.parametrize("name", _control_plane())
def test_control_plane_task_retries_transient_errors(name: str) -> None:
    task = _ours()[name]
    retried = tuple(getattr(task, "autoretry_for", ()))
    for error in (OperationalError, InterfaceError, BrokerError):
        assert any(issubclass(error, e) for e in retried), f"{name} does not retry {error.__name__}"
    assert task.retry_backoff, f"{name} retries without back-off"
    assert task.acks_late, f"{name} is acknowledged before it ran"


@pytest.mark.parametrize("name", sorted(AGENT_STEPS))
def test_agent_step_is_acknowledged_late(name: str) -> None:
    assert _ours()[name].acks_late


def test_broker_settings_redeliver_a_dead_workers_message() -> None:
    assert settings.CELERY_TASK_ACKS_LATE
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


def test_a_dead_workers_redis_message_comes_back_within_minutes() -> None:
    """kombu's default visibility timeout is an hour; ours is longer than a step's deadline (so a
    long step is not run twice) and far shorter than an hour, on both sides."""
    for options in (settings.CELERY_BROKER_TRANSPORT_OPTIONS, agent_app.conf.broker_transport_options):
        assert settings.NEPHELE_STEP_DEADLINE_S < options["visibility_timeout"] <= 900
