"""The Celery application. Task modules are discovered from the installed apps."""

import os
from typing import TypedDict

from celery import Celery
from django.db.utils import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("nephele")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


#: How control-plane tasks that write managed state ride out a database blip (an outage, a
#: restart, a deadlock victim): retried with exponential back-off up to a minute apart. They are
#: idempotent, so a retry (or a redelivery after a worker died, with acks_late) is harmless.
class RetryPolicy(TypedDict):
    """The retry options of a Celery task (spread into ``shared_task``)."""

    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: int
    retry_backoff_max: int
    max_retries: int


RETRY_TRANSIENT: RetryPolicy = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "max_retries": 20,
}
