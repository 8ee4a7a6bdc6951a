"""Schemathesis against a live Nephele (uvicorn, the test PostgreSQL and Redis) with two tenants:
every phase (examples, coverage, fuzzing, stateful), every check, a bounded budget. Zero
server errors and zero schema violations, as a tenant and as a cloud administrator.

Budget: ``NEPHELE_SCHEMATHESIS_MAX_TIME`` seconds per run (default 100) and
``NEPHELE_SCHEMATHESIS_EXAMPLES`` examples per operation (default 10); the run's log and JUnit
report land in ``.cache/schemathesis/`` (which also holds its working cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compute import services
from tenants import credentials
from tenants.roles import Role
from tests.factories import BootImageFactory, MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
from tests.servers import ROOT, asgi_server

REPORTS = ROOT / ".cache" / "schemathesis"


def _tenant(name: str) -> tuple[Any, Any]:
    """A project with its admin, a template, a held VM, a boot image, a key and a token."""
    project = ProjectFactory()
    user = UserFactory(username=name)
    MembershipFactory(user=user, project=project, role=Role.ADMIN)
    template = VMTemplateFactory(project=project, owner=user, vcpu=1, memory_mb=256, disk_gb=1)
    services.create_vms(user, project=project, template=template, name=f"{name}-vm", hold=True)
    BootImageFactory(project=project, owner=user, public=False)
    credentials.create_token(user, name=f"{name}-other")
    return project, user


@pytest.fixture
def tenants(transactional_db: Any) -> dict[str, Any]:
    a, alice = _tenant("alice")
    _tenant("bob")  # the second tenant: its rows must never show up in alice's answers
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    return {"tenant": alice, "cloud-admin": admin, "project": a}


def _run(base: str, secret: str, name: str) -> tuple[int, str]:
    REPORTS.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(ROOT / "tests/portal/schemathesis.toml"),
        "run", f"{base}/api/v1/schema/?format=json", "--url", base,
        "--header", f"Authorization: Bearer {secret}",
        "--phases", "examples,coverage,fuzzing,stateful",  # every check: the default
        "--max-examples", os.environ.get("NEPHELE_SCHEMATHESIS_EXAMPLES", "10"),
        "--max-time", os.environ.get("NEPHELE_SCHEMATHESIS_MAX_TIME", "100"),
        "--workers", "2", "--seed", "1", "--generation-database", "none",
        "--report", "junit", "--report-dir", str(REPORTS / name),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPORTS, capture_output=True, text=True, timeout=1800)
    out = done.stdout + done.stderr
    (REPORTS / f"{name}.log").write_text(out)
    return done.returncode, out


@pytest.mark.parametrize("who", ["tenant", "cloud-admin"])
def test_no_server_error_and_no_schema_violation(tenants: dict[str, Any], who: str) -> None:
    user = tenants[who]
    _token, secret = credentials.create_token(user, name="schemathesis")
    env = {  # the run is one fast client: the rate limits are not what it probes
        "NEPHELE_API_RATE_TOKEN": "100000/min",
        "NEPHELE_API_RATE_USER": "100000/min",
        "NEPHELE_API_RATE_ANON": "100000/min",
    }
    with asgi_server("uvicorn", env) as server:
        rc, out = _run(server.http(), secret, who)
    assert rc == 0, out[-12000:]
