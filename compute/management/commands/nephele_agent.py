"""Run the host agent for the hosts assigned to ``--agent``, without database access.

This command only looks up which host queues the agent serves; it then replaces itself with
``python -m hostagent`` (Django-free, supervised) in an environment without ``DATABASE_URL``
or Django settings, passing the broker explicitly. On a hypervisor host that has no
Nephele database credentials at all, run ``python -m hostagent --agent NAME`` directly with
``CELERY_BROKER_URL`` set; the control plane adds each host's queue as hosts are registered.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from compute.models import Host

#: what the agent must not inherit: it never touches the database
WITHHELD = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "NEPHELE_SECRET_KEY", "PGPASSWORD")


class Command(BaseCommand):
    help = "Run the host agent serving the hosts assigned to --agent (default: local)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--agent", default="local")
        parser.add_argument("--concurrency", type=int, default=8)
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **opts: Any) -> None:
        queues = [h.queue for h in Host.objects.filter(agent=opts["agent"]).order_by("pk")]
        env = {k: v for k, v in os.environ.items() if k not in WITHHELD}
        env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
        env["NEPHELE_CONTROL_QUEUE"] = settings.CELERY_TASK_DEFAULT_QUEUE
        argv = [sys.executable, "-m", "hostagent", "--agent", opts["agent"], "--queues", ",".join(queues),
                "--concurrency", str(opts["concurrency"]), "--loglevel", opts["loglevel"]]  # fmt: skip
        sys.stdout.flush()
        os.execve(sys.executable, argv, env)
