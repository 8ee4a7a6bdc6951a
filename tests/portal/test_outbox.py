"""The transactional outbox across a real broker outage: a create whose broker is down answers
202 with its VM committed and its dispatch kept in the outbox; when the broker is back the relay
publishes it. The control-plane process runs as a subprocess whose broker is a private
redis-server that this test starts only after the create (the machine's Redis is shared)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

from compute.models import VirtualMachine
from compute.states import VMState as S
from portal.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[2]

CREATE = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
c = APIClient()
c.force_authenticate(get_user_model().objects.get(pk=int(sys.argv[1])))
r = c.post("/api/v1/vms/", json.loads(sys.argv[2]), format="json", HTTP_IDEMPOTENCY_KEY="outage-1")
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""

RELAY = """
import json
import django
django.setup()
from portal import outbox
print(json.dumps(outbox.relay(older_than_s=0)))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _control_plane(script: str, port: int, *args: str) -> dict[str, Any]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "NEPHELE_ALLOWED_HOSTS": "testserver",
        "NEPHELE_DB_POOL": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_create_during_a_broker_outage_is_accepted_and_dispatched_when_the_broker_is_back(
    transactional_db: Any, member: Any, project: Any, template: Any, tmp_path: Path
) -> None:
    port = _free_port()  # nothing listens there yet: the broker is down
    body = json.dumps({"name": "outage", "project": project.pk, "template": template.pk})
    first = _control_plane(CREATE, port, str(member.pk), body)
    assert first["status"] == 202, first
    (vm,) = first["body"]
    assert VirtualMachine.objects.get(pk=vm["id"]).state == S.PENDING  # committed
    (row,) = OutboxMessage.objects.all()
    assert (row.task, row.args, row.attempts) == ("compute.schedule_vm", [vm["id"]], 1)
    assert row.last_error

    # the client retries (it saw nothing, or a timeout): the idempotency key returns the same VM
    again = _control_plane(CREATE, port, str(member.pk), body)
    assert again["status"] == 202 and [v["id"] for v in again["body"]] == [vm["id"]]
    assert VirtualMachine.objects.filter(name="outage").count() == 1

    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        broker = redis.Redis(port=port)
        for _ in range(100):
            try:
                broker.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        assert _control_plane(RELAY, port) == {"sent": 1, "waiting": 0}
        assert not OutboxMessage.objects.exists()
        (message,) = broker.lrange("nephele", 0, -1)  # the default queue of the control plane
        assert json.loads(message)["headers"]["task"] == "compute.schedule_vm"
        assert json.loads(message)["headers"]["argsrepr"] == f"[{vm['id']}]"
    finally:
        server.terminate()
        server.wait(timeout=10)
