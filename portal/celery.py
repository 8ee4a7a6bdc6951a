"""The Celery application. Task modules are discovered from the installed apps."""

import os

from celery import Celery
from django.db.utils import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("nephele")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

#: How control-plane tasks that write managed state ride out a database blip (an outage, a
#: restart, a deadlock victim): retried with exponential back-off up to a minute apart. They are
#: idempotent, so a retry (or a redelivery after a worker died, with acks_late) is harmless.
RETRY_TRANSIENT: dict[str, object] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "max_retries": 20,
}
