"""The Celery application. Task modules are discovered from the installed apps."""

import os
from typing import TypedDict

from celery import Celery
from django.db.utils import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("nephele")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


#: The errors a control-plane task rides out: the database (an outage, a restart, a deadlock
#: victim) and the broker (a publish while it is down). libvirt connection errors never reach a
#: task: drivers turn them into a step's error, which the sweeper re-drives.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, BrokerError)


#: How control-plane tasks that write managed state ride out a transient error: retried with
#: exponential back-off up to a minute apart. They are idempotent, so a retry (or a redelivery
#: after a worker died, with acks_late) is harmless. Every task that is not periodic carries it
#: (tests/portal/test_task_policy.py); a periodic task's retry is its next run.
class RetryPolicy(TypedDict):
    """The retry options of a Celery task (spread into ``shared_task``)."""

    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: int
    retry_backoff_max: int
    max_retries: int


RETRY_TRANSIENT: RetryPolicy = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "max_retries": 20,
}
