"""Shared fixtures: role clients, simulated hosts, and a real Celery agent (in-process worker
on the real Redis broker, serving the default queue and every host queue).

The suite runs on PostgreSQL only (``make test`` starts a throwaway one when ``DATABASE_URL``
is unset, see scripts/test-services.py): the session refuses to start on anything else."""

from __future__ import annotations

import ast
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from compute import services
from compute.drivers.simulated import write_node
from compute.models import Host, VirtualMachine
from tenants.roles import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory


def _serialize_ast_parse() -> None:
    """Keep a failing test from crashing the runner (``INTERNALERROR … SystemError: AST
    constructor recursion depth mismatch``).

    CPython 3.11.0–3.11.7 and 3.12.0–3.12.1 (Debian 12 ships 3.11.2) track the AST
    constructor's recursion depth in one per-interpreter counter (python/cpython#106905, fixed
    in 3.11.8 / 3.12.2). When two threads build ASTs at the same time, one of them fails with
    that SystemError: here pytest parses the test module to format a failure while an
    in-process Celery worker thread logs a task's traceback (3.11's ``traceback`` parses each
    source line to place its ``^^^`` carets). Every such caller in the standard library and
    in pytest goes through ``ast.parse``, so taking one lock around it is enough."""
    v = sys.version_info[:3]
    if not ((3, 11) <= v < (3, 11, 8) or (3, 12) <= v < (3, 12, 2)) or getattr(ast.parse, "_serialized", False):
        return
    lock = threading.RLock()
    parse = ast.parse

    @functools.wraps(parse)
    def serialized_parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    serialized_parse._serialized = True  # type: ignore[attr-defined]
    ast.parse = serialized_parse


_serialize_ast_parse()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run on anything but PostgreSQL: row locks and real concurrency are under test,
    and SQLite would quietly turn those tests into something else."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if not engine.endswith("postgresql"):
        raise pytest.UsageError(
            f"Nephele's tests need PostgreSQL, and the database is {engine} (DATABASE_URL unset or not "
            "postgres://). Run `make test` (it starts a throwaway PostgreSQL and Redis), or for a subset "
            "`python3 scripts/test-services.py -- .venv/bin/python -m pytest tests/…`, or set "
            "DATABASE_URL=postgres://…"
        )


@pytest.fixture(scope="session", autouse=True)
def _clean_broker() -> None:
    """Start from an empty test broker DB (stale messages from an aborted run must not leak in)."""
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


@pytest.fixture(autouse=True)
def _forget_login_failures() -> None:
    """Each test starts with no login throttle or API rate state (tenants/security.py,
    portal/throttling.py): failed logins and requests of one test, all from 127.0.0.1, must not
    back off another test's. Only those keys are deleted: the cache shares its Redis DB with the
    broker."""
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = [
        *client.scan_iter(match="*nephele:login-fail:*", count=1000),
        *client.scan_iter(match="nephele:rate:*", count=1000),
    ]
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def _undefine_test_pools() -> Iterator[None]:
    """At the end, undefine the storage pools this run's datastores defined on the real libvirtd
    (``<NEPHELE_DOMAIN_PREFIX>-ds-<id>``; storage.monitor_datastore runs wherever a worker or
    eager mode picks it up). Their files stay with the test's tmp dirs."""
    yield
    from storage.drivers.base import DriverError
    from storage.drivers.libvirt import LibvirtPoolDriver

    drv = LibvirtPoolDriver("qemu:///system")
    prefix = f"{settings.NEPHELE_DOMAIN_PREFIX}-ds-"
    try:
        for pool in drv._connection().listAllStoragePools():
            if pool.name().startswith(prefix):
                drv.undefine_pool(pool.name())
    except DriverError:
        pass  # no libvirtd here: nothing was defined
    finally:
        drv.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_stray_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """At the end, end database sessions left by server processes and worker threads, so the
    test database can be dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Any, settings: Any) -> None:
    settings.NEPHELE_STATE_DIR = tmp_path / "state"


@pytest.fixture
def project(db: Any) -> Any:
    return ProjectFactory()


@pytest.fixture
def admin_user(db: Any) -> Any:
    return UserFactory(username="cloudadmin", is_staff=True, is_superuser=True)


def _member(project: Any, role: str, name: str) -> Any:
    user = UserFactory(username=name)
    MembershipFactory(user=user, project=project, role=role)
    return user


@pytest.fixture
def member(project: Any) -> Any:
    return _member(project, Role.MEMBER, "member")


@pytest.fixture
def viewer(project: Any) -> Any:
    return _member(project, Role.VIEWER, "viewer")


@pytest.fixture
def project_admin(project: Any) -> Any:
    return _member(project, Role.ADMIN, "projadmin")


@pytest.fixture
def other_tenant(db: Any) -> Any:
    return _member(ProjectFactory(), Role.ADMIN, "stranger")


def client_for(user: Any | None) -> APIClient:
    c = APIClient()
    if user is not None:
        c.force_authenticate(user)
    return c


@pytest.fixture
def member_client(member: Any) -> APIClient:
    return client_for(member)


@pytest.fixture
def admin_client(admin_user: Any) -> APIClient:
    return client_for(admin_user)


@pytest.fixture
def template(project: Any, admin_user: Any) -> Any:
    return VMTemplateFactory(project=project, owner=admin_user, vcpu=2, memory_mb=1024, disk_gb=10)


@pytest.fixture
def make_sim_host(admin_user: Any, tmp_path: Any) -> Callable[..., Host]:
    """Register a simulated host (libvirt test driver with its own capacity) and mark it probed."""

    def make(name: str = "sim-a", vcpu: int = 16, memory_mb: int = 32768, disk_gb: int = 500, **kw: Any) -> Host:
        uri = write_node(tmp_path / "sim", name, vcpu, memory_mb, disk_gb)
        kw.setdefault("hypervisor", "test")
        host = services.register_host(admin_user, name=name, uri=uri, **kw)
        from compute.drivers.registry import get_driver

        services.record_probe(host.pk, get_driver("libvirt", uri).host_info())
        host.refresh_from_db()
        return host

    return make


@pytest.fixture
def agent(transactional_db: Any) -> Iterator[Any]:
    """A real Celery worker, in-process (threads), named like the host agent and consuming the
    default queue plus host queues added by ``add_consumer``; broker: the real Redis."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.conf.worker_enable_remote_control = True
    with start_worker(
        app,
        pool="threads",
        concurrency=8,
        queues=["nephele", "agent.local"],
        hostname="agent@local",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


def vm_state(pk: int) -> str:
    return VirtualMachine.objects.get(pk=pk).state


def requires_postgres() -> Any:
    """Mark a row-lock / real-concurrency test (``-m postgres`` selects them). Nothing is skipped:
    the whole suite runs on PostgreSQL only (see ``pytest_sessionstart``)."""
    return pytest.mark.postgres


def page_queries(client: Any, url: str) -> tuple[int, str]:
    """The SQL queries one GET of ``url`` runs (after a warming GET: session, caches) and its
    page: list pages assert this stays the same as their data grows (issue 13)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, resp.status_code
    return len(ctx.captured_queries), resp.content.decode()
