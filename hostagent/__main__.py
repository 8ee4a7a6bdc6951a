"""``python -m hostagent --agent NAME [--queues host.1,host.2]``: run a host agent, supervised.

The agent is a Celery worker over ``hostagent.celery`` (no Django, no database). This entry
point runs it as a child process and starts it again whenever it exits other than by request —
Celery gives up on some broker failures with "Unrecoverable error" instead of reconnecting —
after a back-off of 1, 2, 4 … 30 s (reset once a child has lived a minute). SIGTERM / SIGINT
stop the child and the supervisor.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

log = logging.getLogger("hostagent")


def worker_argv(agent: str, queues: list[str], concurrency: int, loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "hostagent.celery", "worker",
        "-n", f"agent@{agent}", "-Q", ",".join([f"agent.{agent}", *queues]),
        "-P", "threads", "-c", str(concurrency), "-l", loglevel, "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def supervise(argv: list[str], env: dict[str, str] | None = None, max_backoff: float = 30.0) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, env=env)
        rc = child.wait()
        if stopping:
            return 0
        if time.monotonic() - started > 60:
            backoff = 1.0
        log.warning("the agent worker exited with %s; starting it again in %.0f s", rc, backoff)
        time.sleep(backoff)
        if stopping:
            return 0
        backoff = min(backoff * 2, max_backoff)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hostagent", description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="local", help="the name hosts are assigned to (Host.agent)")
    parser.add_argument("--queues", default="", help="host queues to consume at start, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--loglevel", default="INFO")
    opts = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hostagent %(levelname)s %(message)s")
    queues = [q for q in opts.queues.split(",") if q]
    return supervise(worker_argv(opts.agent, queues, opts.concurrency, opts.loglevel), dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
