"""The agent's own Celery application: configured from the environment, never from Django.

``CELERY_BROKER_URL`` (or ``REDIS_URL``) names the broker; with an ``amqp://`` URL the queues
are quorum queues with publisher confirms, as on the control plane (``portal/settings.py``).
"""

from __future__ import annotations

import os

from celery import Celery

BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
#: the control plane's queue, where results go
CONTROL_QUEUE = os.environ.get("NEPHELE_CONTROL_QUEUE", "nephele")

# not the current app: in a control-plane process (which imports the agent's tasks to run them
# in-process too) ``task.delay()`` must keep going through portal.celery's app
app = Celery("hostagent", include=["hostagent.tasks"], set_as_current=False)
app.conf.update(
    broker_url=BROKER,
    result_backend=None,
    task_default_queue=CONTROL_QUEUE,
    task_acks_late=True,  # a step whose agent died before finishing is delivered again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # a broker outage is waited out, never fatal
    broker_transport_options={"visibility_timeout": float(os.environ.get("NEPHELE_VISIBILITY_TIMEOUT_S", "900"))},
    worker_enable_remote_control=True,  # the control plane adds host queues with add_consumer
)
if BROKER.startswith(("amqp://", "amqps://", "pyamqp://")):
    app.conf.update(
        task_default_queue_type="quorum",
        task_create_missing_queue_type="quorum",
        task_default_exchange_type="topic",  # as on the control plane: delayed delivery in RabbitMQ
        task_create_missing_queue_exchange_type="topic",
        broker_transport_options={"confirm_publish": True},
        worker_detect_quorum_queues=True,
    )
