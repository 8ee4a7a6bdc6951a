"""Nephele's ASGI application served as in production (daphne or uvicorn) in a child process,
on the test database and Redis DB, for the tests that need real sockets (the live-page
consumers, the schemathesis run). The test's rows must be committed: ``transactional_db``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveServer:
    kind: str
    port: int
    pid: int

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/live/"

    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def asgi_server(kind: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """``portal.asgi:application`` under ``kind`` ("daphne" or "uvicorn") until the block ends."""
    from django.db import connections

    db = settings.DATABASES["default"]
    port = free_port()
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "NEPHELE_LOG_LEVEL": os.environ.get("TEST_SERVER_LOG", "WARNING"),
        **(env or {}),
    }
    if kind == "daphne":
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
               "--log-level", "warning", "portal.asgi:application"]  # fmt: skip
    connections.close_all()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"{kind} exited with {proc.returncode}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, f"{kind} did not start"
            time.sleep(0.1)
        yield LiveServer(kind, port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)
