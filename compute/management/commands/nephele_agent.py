"""Run a host agent: a Celery worker that consumes the queues of the hosts it serves.

The agent keeps one libvirt connection per host open for its whole life (the nova-compute
pattern); libvirt's test driver keeps a simulated host's domains only that long. Threads, not
processes, so every task of a host shares that one connection. Hosts registered later are
added with a remote-control ``add_consumer`` (see ``compute.tasks.attach_host_queue``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from compute.models import Host
from compute.tasks import agent_name
from portal.celery import app


class Command(BaseCommand):
    help = "Run the host agent serving the hosts assigned to --agent (default: local)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--agent", default="local")
        parser.add_argument("--concurrency", type=int, default=8)
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **opts: Any) -> None:
        queues = [f"agent.{opts['agent']}"] + [h.queue for h in Host.objects.filter(agent=opts["agent"])]
        app.worker_main(
            [
                "worker",
                "-n",
                agent_name(opts["agent"]),
                "-Q",
                ",".join(queues),
                "-P",
                "threads",
                "-c",
                str(opts["concurrency"]),
                "-l",
                opts["loglevel"],
                "--without-gossip",
                "--without-mingle",
            ]
        )
