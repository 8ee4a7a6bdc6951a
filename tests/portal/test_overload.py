"""Overload answers 503 with Retry-After, never 500 (issues 12 and 13): each process has a
bounded pool of database connections; a request that can't get one in time is turned away.

A real daphne process serves the test database with a pool of 2 connections and a 1 s wait.
The test holds the VM's row lock from its own connection, so the first two action requests
each hold a pooled connection while they wait for the lock; the others find the pool empty."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg
import pytest
from django.db import connection, connections

from compute import services
from tenants.credentials import create_token
from tests.conftest import requires_postgres


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> Answer:
    req = urllib.request.Request(url, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Answer(resp.status, dict(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers), err.read().decode())


@pytest.fixture
def small_pool_server(transactional_db: Any) -> Iterator[str]:
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess

    options = connections["default"].settings_dict["OPTIONS"]
    saved = options.get("pool")
    options["pool"] = {"min_size": 1, "max_size": 2, "timeout": 1.0}
    connections.close_all()
    proc = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=None))
    proc.start()
    try:
        if not proc.ready.wait(timeout=30):
            raise RuntimeError("daphne did not start")
        yield f"http://127.0.0.1:{proc.port.value}"
    finally:
        proc.terminate()
        proc.join(10)
        options["pool"] = saved
        connections.close_all()
        connection.close_pool()


@requires_postgres()
def test_requests_beyond_the_pool_get_503_with_retry_after_and_change_nothing(
    small_pool_server: str, member: Any, project: Any, template: Any
) -> None:
    (vm,) = services.create_vms(member, project=project, template=template, name="held", hold=True)
    _, secret = create_token(member, name="t")
    headers = {"Authorization": f"Bearer {secret}"}
    url = f"{small_pool_server}/api/v1/vms/{vm.pk}/action/"
    params = connection.get_connection_params()
    answers: list[Answer] = []
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port")}) as lock:
        lock.execute("BEGIN")
        lock.execute("SELECT 1 FROM compute_virtualmachine WHERE id = %s FOR UPDATE", (vm.pk,))
        threads = [
            threading.Thread(target=lambda: answers.append(post(url, {"action": "release"}, headers))) for _ in range(6)
        ]
        for t in threads:
            t.start()
        threading.Event().wait(3)  # the waiters hold both connections; the rest time out after 1 s
        lock.execute("ROLLBACK")
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in answers)
    assert 500 not in codes, [r.text[:200] for r in answers]
    busy = [r for r in answers if r.status_code == 503]
    assert busy, codes
    assert all(r.headers["Retry-After"] == "2" and "busy" in r.json()["detail"] for r in busy)
    assert codes.count(202) == 1, codes  # one release went through; a second one is a 409
    assert set(codes) <= {202, 409, 503}
