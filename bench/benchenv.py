"""Where a bench keeps its data: names that two runs at once never share (issue 13).

``database()`` points ``DATABASE_URL`` at a database of its own — ``BENCH_DATABASE`` if set,
else ``nephele_bench_<pid>_<random>`` on the PostgreSQL server of ``DATABASE_URL`` (a temporary
SQLite file when there is none) — created now and dropped at exit. ``redis()`` points
``REDIS_URL`` at ``BENCH_REDIS_URL`` if set, else at a private ``redis-server`` on a free port,
stopped at exit. Neither ever flushes or drops anything it did not create.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database(prefix: str = "nephele_bench") -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        return os.environ["DATABASE_URL"]
    server = url.rsplit("/", 1)[0]
    given = os.environ.get("BENCH_DATABASE", "")
    name = given or f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    if not given:
        subprocess.run(["psql", f"{server}/postgres", "-qc", f'CREATE DATABASE "{name}"'], check=True)

        def drop() -> None:
            subprocess.run(
                ["psql", f"{server}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False
            )

        atexit.register(drop)
    os.environ["DATABASE_URL"] = f"{server}/{name}"
    return os.environ["DATABASE_URL"]


def redis() -> str:
    given = os.environ.get("BENCH_REDIS_URL", "")
    if given:
        os.environ["REDIS_URL"] = given
        return given
    port = _free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    return os.environ["REDIS_URL"]


def django_env(prefix: str = "nephele-bench") -> Path:
    """A bench's whole environment before ``django.setup()``: its own Redis and database, a
    state folder of its own (returned) and the portal's settings."""
    redis()
    database()
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    os.environ["NEPHELE_STATE_DIR"] = str(tmp / "state")
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    return tmp


def small_cloud(tmp: Path, hosts: int, *, vcpu: int, memory_mb: int, disk_gb: int = 1000) -> dict[str, Any]:
    """After ``django.setup()`` and the migrations: an admin, a member of one project, a
    one-vCPU template and ``hosts`` simulated hosts of the given size, registered through the
    service (``admin``, ``user``, ``project``, ``template``)."""
    from django.contrib.auth import get_user_model

    from compute import services
    from compute.drivers.simulated import write_node
    from compute.models import VMTemplate
    from tenants.models import Membership, Organization, Project

    admin = get_user_model().objects.create(username="admin", is_staff=True, is_superuser=True)
    user = get_user_model().objects.create(username="bench")
    project = Project.objects.create(organization=Organization.objects.create(name="bench"), name="bench")
    Membership.objects.create(user=user, project=project, role="member")
    template = VMTemplate.objects.create(
        project=project, owner=admin, name="t", vcpu=1, memory_mb=512, hypervisor="test"
    )
    for i in range(hosts):
        uri = write_node(tmp / "sim", f"h{i}", vcpu=vcpu, memory_mb=memory_mb, disk_gb=disk_gb)
        services.register_host(admin, name=f"h{i}", uri=uri, hypervisor="test")
    return {"admin": admin, "user": user, "project": project, "template": template}


def service_processes(env: dict[str, str], root: Path, logs: Path | None = None) -> list[subprocess.Popen[bytes]]:
    """The host agent and a two-process scheduler worker, as ``make run`` starts them (their
    output in ``logs``/agent.log and worker.log when given)."""
    import sys

    celery = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-n", "scheduler@%h", "-Q", "nephele",
              "-c", "2", "-l", "WARNING"]  # fmt: skip
    agent = [sys.executable, "manage.py", "nephele_agent", "--loglevel", "WARNING"]
    if logs is None:
        return [subprocess.Popen(agent, cwd=root, env=env), subprocess.Popen(celery, cwd=root, env=env)]
    with open(logs / "agent.log", "ab") as a_log, open(logs / "worker.log", "ab") as w_log:
        return [
            subprocess.Popen(agent, cwd=root, env=env, stdout=a_log, stderr=subprocess.STDOUT),
            subprocess.Popen(celery, cwd=root, env=env, stdout=w_log, stderr=subprocess.STDOUT),
        ]
