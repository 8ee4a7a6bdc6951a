"""RabbitMQ as the production broker: a VM is created through the API and deployed by a real
Celery worker over a real RabbitMQ (the machine's node, a throwaway vhost), on quorum queues with
publisher confirms. The control plane and the worker run as subprocesses on
``portal.settings`` (the tests' own Celery app is bound to Redis)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from compute.models import VirtualMachine
from compute.states import VMState as S
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

CREATE = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
c = APIClient()
c.force_authenticate(get_user_model().objects.get(pk=int(sys.argv[1])))
r = c.post("/api/v1/vms/", json.loads(sys.argv[2]), format="json")
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return shutil.which("rabbitmqctl") is not None


def _ctl(*args: str, timeout: float = 60) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[None]:
    """The machine's RabbitMQ node; on a fresh machine (none running) the Debian package's node is
    started on loopback for this run and stopped at its end."""
    started = False
    if not _rabbit_up():
        if shutil.which("rabbitmq-server") is None:
            pytest.fail("RabbitMQ is needed: run `make deps` (Debian package rabbitmq-server)")
        env = {**os.environ, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "ERL_EPMD_ADDRESS": "127.0.0.1"}
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60)
        _ctl("await_startup", timeout=180)
        started = True
    yield
    if started:
        _ctl("stop")


@pytest.fixture
def amqp_env(rabbitmq: None) -> Iterator[dict[str, str]]:
    vhost = f"nephele-test-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    db = connection.settings_dict
    try:
        yield {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "NEPHELE_ALLOWED_HOSTS": "testserver",
            "NEPHELE_DB_POOL": "0",
            "NEPHELE_DOMAIN_PREFIX": "ntestamqp",
            "VHOST": vhost,
        }
    finally:
        _ctl("delete_vhost", vhost)


def test_a_vm_deploys_over_rabbitmq_on_quorum_queues(
    transactional_db: Any, amqp_env: dict[str, str], make_sim_host: Any, member: Any, project: Any, template: Any
) -> None:
    host = make_sim_host("amqp")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-n", "agent@amqp", "-P", "threads", "-c", "4",
         "-Q", f"nephele,{host.queue}", "-l", "WARNING"],
        cwd=ROOT, env=amqp_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        body = json.dumps({"name": "rabbit", "project": project.pk, "template": template.pk})
        out = subprocess.run(
            [sys.executable, "-c", CREATE, str(member.pk), body],
            cwd=ROOT, env=amqp_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        assert answer["status"] == 202, answer
        pk = answer["body"][0]["id"]
        wait_for(lambda: VirtualMachine.objects.get(pk=pk).state == S.RUNNING, timeout=60)
        queues = dict(
            line.split("\t")[:2] for line in _ctl("list_queues", "-p", amqp_env["VHOST"], "name", "type").splitlines()
            if "\t" in line
        )  # fmt: skip
        assert queues.get("nephele") == "quorum", queues
        assert queues.get(host.queue) == "quorum", queues
        exchanges = dict(
            line.split("\t")[:2]
            for line in _ctl("list_exchanges", "-p", amqp_env["VHOST"], "name", "type").splitlines()
            if "\t" in line
        )  # fmt: skip
        # topic exchanges: a retry's countdown waits in the broker (native delayed delivery)
        assert exchanges.get("nephele") == "topic", exchanges
        assert exchanges.get(host.queue) == "topic", exchanges
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
