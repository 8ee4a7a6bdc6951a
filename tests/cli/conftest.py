"""The CLI tier: the real entry point (``.venv/bin/nephele``, installed by ``make venv``) in a
subprocess against a live server (uvicorn on the test PostgreSQL and Redis).

One server for the whole tier (``server``: rows are per test, so sharing it is safe); each test gets fresh rows (``cloud``: a project with a
project admin "clio" and a cloud admin "root", each with an API token stored as a profile, a
template, unlimited quotas). Tasks queued by the server wait in Redis unless a test asks for
the in-process worker (``agent``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenants import credentials
from tenants.quotas import Resource, set_limit
from tenants.roles import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
from tests.servers import LiveServer, asgi_server

NEPHELE = Path(sys.executable).with_name("nephele")


@pytest.fixture(scope="session")
def server_state(tmp_path_factory: Any) -> Path:
    """The server's state directory (where hosts write console logs it serves)."""
    return Path(tmp_path_factory.mktemp("cli-server-state"))


@pytest.fixture(scope="session")
def server(django_db_setup: Any, server_state: Path) -> Iterator[LiveServer]:
    from django.conf import settings

    if not NEPHELE.exists():
        pytest.fail(f"{NEPHELE} is missing: run `make venv` (it installs the command line)")
    env = {
        "NEPHELE_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NEPHELE_STATE_DIR": str(server_state),
        "NEPHELE_TEST_DOMAIN_PREFIX": settings.NEPHELE_DOMAIN_PREFIX,  # VMs' file names as this process names them
    }
    with asgi_server("uvicorn", env) as live:
        yield live


@pytest.fixture
def cloud(transactional_db: Any, server: LiveServer, server_state: Path, tmp_path: Path) -> dict[str, Any]:
    project = ProjectFactory()
    user = UserFactory(username="clio")
    user.set_password("cli-pass-42")
    user.save()
    MembershipFactory(user=user, project=project, role=Role.ADMIN)
    root = UserFactory(username="root", is_staff=True)
    for resource in Resource.values:
        set_limit(project, resource, -1)
    template = VMTemplateFactory(project=project, owner=user, name="small", vcpu=1, memory_mb=256, disk_gb=1)
    _token, secret = credentials.create_token(user, name="given")
    _admin_token, admin_secret = credentials.create_token(root, name="root-cli")
    config = tmp_path / "nephele" / "config.json"
    config.parent.mkdir()
    url = server.http()
    config.write_text(json.dumps({"current": "clio", "profiles": {
        "clio": {"url": url, "token": secret, "project": project.pk},
        "root": {"url": url, "token": admin_secret, "project": project.pk},
    }}))  # fmt: skip
    return {"url": url, "project": project.pk, "project_obj": project, "template": template.pk, "token": secret,
            "user": user, "root": root, "config": config, "tmp": tmp_path, "server_state": server_state}  # fmt: skip


def nephele(cloud: dict[str, Any], *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Any:
    """Run ``nephele ARGS`` (profile clio unless ``--profile`` is among them); the completed process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEPHELE_")}
    environ.update(NEPHELE_CONFIG=str(cloud["config"]), COLUMNS="200", **(env or {}))
    return subprocess.run([str(NEPHELE), *args], env=environ, input=stdin, capture_output=True, text=True, timeout=300)


def ok_json(cloud: dict[str, Any], *args: str, stdin: str = "") -> Any:
    """``nephele -o json ARGS``, which must succeed; its parsed output."""
    done = nephele(cloud, "-o", "json", *args, stdin=stdin)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
    return json.loads(done.stdout)


def admin_json(cloud: dict[str, Any], *args: str, stdin: str = "", env_password: str = "") -> Any:
    """``nephele --profile root -o json ARGS`` (the cloud admin), which must succeed."""
    env = {"NEPHELE_NEW_PASSWORD": env_password} if env_password else None
    done = nephele(cloud, "--profile", "root", "-o", "json", *args, stdin=stdin, env=env)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
    return json.loads(done.stdout)


def popen(cloud: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    """``nephele ARGS`` left running (``event list --follow``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEPHELE_")}
    environ.update(NEPHELE_CONFIG=str(cloud["config"]), COLUMNS="200")
    return subprocess.Popen([str(NEPHELE), *args], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)  # fmt: skip
