"""The ``nephele`` command line through its real entry point (``.venv/bin/nephele``, installed by
``make venv``) against a live server (uvicorn, the test PostgreSQL): login by password and by
token (profile file mode 0600), VM create / list / show / actions with --wait, JSON and YAML
output, and the errors scripts rely on: exit code and message with the field."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenants import credentials
from tenants.quotas import set_limit
from tenants.roles import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
from tests.servers import asgi_server, free_port

NEPHELE = Path(sys.executable).with_name("nephele")


@pytest.fixture
def cloud(transactional_db: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not NEPHELE.exists():
        pytest.fail(f"{NEPHELE} is missing: run `make venv` (it installs the command line)")
    project = ProjectFactory()
    user = UserFactory(username="clio")
    user.set_password("cli-pass-42")
    user.save()
    MembershipFactory(user=user, project=project, role=Role.ADMIN)
    for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
        set_limit(project, resource, -1)
    template = VMTemplateFactory(project=project, owner=user, name="small", vcpu=1, memory_mb=256, disk_gb=1)
    _token, secret = credentials.create_token(user, name="given")
    with asgi_server("uvicorn", {"NEPHELE_ALLOWED_HOSTS": "127.0.0.1,localhost"}) as server:
        yield {"url": server.http(), "project": project.pk, "template": template.pk, "token": secret,
               "config": tmp_path / "nephele" / "config.json"}  # fmt: skip


def nephele(cloud: dict[str, Any], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEPHELE_")}
    env.update(NEPHELE_CONFIG=str(cloud["config"]), COLUMNS="200")
    return subprocess.run([str(NEPHELE), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_login_with_a_password_makes_a_token_kept_private(cloud: dict[str, Any]) -> None:
    done = nephele(cloud, "login", "--url", cloud["url"], "--username", "clio", stdin="cli-pass-42\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(cloud["config"].stat().st_mode) == 0o600
    profile = json.loads(cloud["config"].read_text())["profiles"]["default"]
    assert profile["token"].startswith("nph_") and profile["url"] == cloud["url"]
    listed = nephele(cloud, "-o", "json", "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert {"given", "cli-default"} <= {t["name"] for t in json.loads(listed.stdout)}


def test_a_wrong_password_is_refused_with_the_auth_exit_code(cloud: dict[str, Any]) -> None:
    done = nephele(cloud, "login", "--url", cloud["url"], "--username", "clio", stdin="nope\n")
    assert done.returncode == 5 and "sign-in refused" in done.stderr
    assert not cloud["config"].exists()


def test_vm_create_wait_list_show_and_actions(cloud: dict[str, Any]) -> None:
    login = nephele(cloud, "login", "--url", cloud["url"], "--token", cloud["token"],
                    "--default-project", str(cloud["project"]))  # fmt: skip
    assert login.returncode == 0, login.stderr
    made = nephele(cloud, "-o", "json", "vm", "create", "web", "--template", str(cloud["template"]), "--hold", "--wait")
    assert made.returncode == 0, made.stderr
    (vm,) = json.loads(made.stdout)
    assert vm["state"] == "HOLD" and vm["project"] == cloud["project"]
    table = nephele(cloud, "vm", "list")
    assert table.returncode == 0 and "web" in table.stdout and "HOLD" in table.stdout
    shown = yaml.safe_load(nephele(cloud, "-o", "yaml", "vm", "show", str(vm["id"])).stdout)
    assert shown["id"] == vm["id"] and shown["state"] == "HOLD"
    # an action the state refuses: 409, exit code 4, the reason printed
    refused = nephele(cloud, "vm", "action", str(vm["id"]), "poweroff")
    assert refused.returncode == 4 and "409" in refused.stderr, refused.stderr
    resized = nephele(cloud, "-o", "json", "vm", "resize", str(vm["id"]), "--vcpu", "2")
    assert resized.returncode == 0 and json.loads(resized.stdout)["vcpu"] == 2, resized.stderr
    gone = nephele(cloud, "-o", "json", "vm", "action", str(vm["id"]), "terminate", "--yes", "--wait")
    assert gone.returncode == 0 and json.loads(gone.stdout)["state"] == "DONE", gone.stderr


def test_errors_name_the_field_and_exit_with_a_code_scripts_can_use(cloud: dict[str, Any]) -> None:
    nephele(cloud, "login", "--url", cloud["url"], "--token", cloud["token"])
    no_project = nephele(cloud, "vm", "create", "x", "--template", str(cloud["template"]))
    assert no_project.returncode == 1 and "field project" in no_project.stderr
    blank = nephele(
        cloud, "--project", str(cloud["project"]), "vm", "create", " ", "--template", str(cloud["template"])
    )
    assert blank.returncode == 1 and "field name" in blank.stderr, blank.stderr
    missing = nephele(cloud, "vm", "show", "999999")
    assert missing.returncode == 3 and "404" in missing.stderr
    usage = nephele(cloud, "vm", "show", "not-a-number")
    assert usage.returncode == 2


def test_a_bad_token_and_an_unreachable_server(cloud: dict[str, Any]) -> None:
    nephele(cloud, "login", "--url", cloud["url"], "--token", "nph_not-a-real-token")
    assert nephele(cloud, "vm", "list").returncode == 5
    nephele(cloud, "login", "--url", f"http://127.0.0.1:{free_port()}", "--token", cloud["token"], "--as", "gone")
    down = nephele(cloud, "--profile", "gone", "vm", "list")
    assert down.returncode == 6 and "cannot reach" in down.stderr
    assert nephele(cloud, "--profile", "nobody", "vm", "list").returncode == 5  # not logged in


def test_quota_show_and_set(cloud: dict[str, Any]) -> None:
    admin = UserFactory(username="ops", is_staff=True, is_superuser=True)
    _token, secret = credentials.create_token(admin, name="ops")
    nephele(cloud, "login", "--url", cloud["url"], "--token", secret, "--default-project", str(cloud["project"]))
    done = nephele(cloud, "-o", "json", "quota", "set", "vcpu", "12")
    assert done.returncode == 0, done.stderr
    assert {q["resource"]: q["limit"] for q in json.loads(done.stdout)}["vcpu"] == 12
    shown = nephele(cloud, "quota", "show")
    assert shown.returncode == 0 and "vCPU" in shown.stdout and "12" in shown.stdout, shown.stderr
    default = nephele(cloud, "-o", "json", "quota", "set", "images", "7", "--default")
    assert default.returncode == 0, default.stderr
    listed = nephele(cloud, "-o", "json", "quota", "show", "--defaults")
    assert {q["resource"]: q["limit"] for q in json.loads(listed.stdout)}["images"] == 7
    bad = nephele(cloud, "quota", "set", "vcpu", str(10**16), "--default")
    assert bad.returncode == 1 and "field limit" in bad.stderr, bad.stderr
    # a project admin reads the quotas, and may not set them
    nephele(
        cloud, "login", "--url", cloud["url"], "--token", cloud["token"], "--default-project", str(cloud["project"])
    )
    assert nephele(cloud, "quota", "show").returncode == 0
    refused = nephele(cloud, "quota", "set", "vcpu", "99")
    assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr
