"""The ``nephele`` command line through its real entry point against a live server: login by
password and by token (profile file mode 0600), profiles, VM create / list / show / actions
with --wait, JSON and YAML output, shell completion, and the errors scripts rely on: exit code
and message with the field (validation, 404, 409, expired token, unreachable server)."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from typing import Any

import yaml
from django.utils import timezone

from tenants.models import ApiToken
from tests.servers import free_port

from .conftest import admin_json, nephele, ok_json


def test_login_with_a_password_makes_a_token_kept_private(cloud: dict[str, Any]) -> None:
    done = nephele(cloud, "login", "--url", cloud["url"], "--username", "clio", stdin="cli-pass-42\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(cloud["config"].stat().st_mode) == 0o600
    config = json.loads(cloud["config"].read_text())
    profile = config["profiles"]["default"]
    assert config["current"] == "default"
    assert profile["token"].startswith("nph_") and profile["url"] == cloud["url"]
    listed = nephele(cloud, "-o", "json", "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert {"given", "cli-default"} <= {t["name"] for t in json.loads(listed.stdout)}


def test_a_wrong_password_is_refused_with_the_auth_exit_code(cloud: dict[str, Any]) -> None:
    done = nephele(cloud, "login", "--url", cloud["url"], "--username", "clio", stdin="nope\n")
    assert done.returncode == 5 and "sign-in refused" in done.stderr
    assert "default" not in json.loads(cloud["config"].read_text())["profiles"]


def test_profiles_list_use_and_logout_revokes_the_token(cloud: dict[str, Any]) -> None:
    rows = ok_json(cloud, "profile", "list")
    assert {(r["name"], r["current"]) for r in rows} == {("clio", True), ("root", False)}
    ok_json(cloud, "profile", "use", "root")
    assert ok_json(cloud, "user", "list")  # root is a cloud admin: the current profile now
    assert nephele(cloud, "profile", "use", "nobody").returncode == 5
    ok_json(cloud, "logout", "--as", "clio")
    assert ApiToken.objects.get(name="given").revoked_at is not None
    assert [r["name"] for r in ok_json(cloud, "profile", "list")] == ["root"]


def test_vm_create_wait_list_show_and_actions(cloud: dict[str, Any]) -> None:
    (vm,) = ok_json(cloud, "vm", "create", "web", "--template", str(cloud["template"]), "--hold", "--wait")
    assert vm["state"] == "HOLD" and vm["project"] == cloud["project"]
    table = nephele(cloud, "vm", "list")
    assert table.returncode == 0 and "web" in table.stdout and "HOLD" in table.stdout
    shown = yaml.safe_load(nephele(cloud, "-o", "yaml", "vm", "show", str(vm["id"])).stdout)
    assert shown["id"] == vm["id"] and shown["state"] == "HOLD"
    # an action the state refuses: 409, exit code 4, the reason printed (the action's own command)
    refused = nephele(cloud, "vm", "poweroff", str(vm["id"]))
    assert refused.returncode == 4 and "409" in refused.stderr, refused.stderr
    refused = nephele(cloud, "vm", "action", str(vm["id"]), "suspend")
    assert refused.returncode == 4 and "409" in refused.stderr, refused.stderr
    assert ok_json(cloud, "vm", "resize", str(vm["id"]), "--vcpu", "2")["vcpu"] == 2
    # a stale version is refused (optimistic concurrency), naming the field
    stale = nephele(cloud, "vm", "resize", str(vm["id"]), "--vcpu", "1", "--version", str(shown["version"]))
    assert stale.returncode == 4 and "field version" in stale.stderr, stale.stderr
    history = ok_json(cloud, "vm", "history", str(vm["id"]))
    assert [c["to_state"] for c in history["state_changes"]][:1] == ["HOLD"]
    # terminate asks first: "no" leaves the VM alone
    declined = nephele(cloud, "vm", "terminate", str(vm["id"]), stdin="n\n")
    assert declined.returncode == 1 and ok_json(cloud, "vm", "show", str(vm["id"]))["state"] == "HOLD"
    gone = ok_json(cloud, "vm", "terminate", str(vm["id"]), "--yes", "--wait")
    assert gone["state"] == "DONE"
    assert vm["id"] not in [v["id"] for v in ok_json(cloud, "vm", "list")]
    assert vm["id"] in [v["id"] for v in ok_json(cloud, "vm", "list", "--state", "DONE")]


def test_vm_create_from_an_image(cloud: dict[str, Any]) -> None:
    from tests.images.factories import ready_image

    img = ready_image(cloud["user"], cloud["project_obj"], "cli-os")
    made = nephele(cloud, "-o", "json", "vm", "create", "own", "--image", str(img.pk), "--vcpu", "1",
                   "--memory-mb", "256", "--disk-gb", "1", "--hold")  # fmt: skip
    assert made.returncode == 0, made.stderr
    (vm,) = json.loads(made.stdout)
    assert vm["state"] == "HOLD" and vm["template"] is None
    neither = nephele(cloud, "vm", "create", "x")
    assert neither.returncode == 1 and "field template" in neither.stderr, neither.stderr
    sizeless = nephele(cloud, "vm", "create", "x", "--image", str(img.pk))
    assert sizeless.returncode == 1 and "vcpu" in sizeless.stderr, sizeless.stderr


def test_errors_name_the_field_and_exit_with_a_code_scripts_can_use(cloud: dict[str, Any]) -> None:
    config = json.loads(cloud["config"].read_text())
    config["profiles"]["clio"]["project"] = None
    cloud["config"].write_text(json.dumps(config))
    no_project = nephele(cloud, "vm", "create", "x", "--template", str(cloud["template"]))
    assert no_project.returncode == 1 and "field project" in no_project.stderr
    blank = nephele(
        cloud, "--project", str(cloud["project"]), "vm", "create", " ", "--template", str(cloud["template"])
    )
    assert blank.returncode == 1 and "field name" in blank.stderr, blank.stderr
    too_big = nephele(
        cloud, "--project", str(cloud["project"]), "vm", "create", "x", "--template", str(cloud["template"]),
        "--vcpu", "100000",
    )  # fmt: skip
    assert too_big.returncode == 1 and "field vcpu" in too_big.stderr, too_big.stderr
    bad_filter = nephele(cloud, "vm", "list", "--state", "BOGUS")
    assert bad_filter.returncode == 1 and "field state" in bad_filter.stderr
    missing = nephele(cloud, "vm", "show", "999999")
    assert missing.returncode == 3 and "404" in missing.stderr
    assert nephele(cloud, "vm", "show", "not-a-number").returncode == 2
    assert nephele(cloud, "vm", "no-such-command").returncode == 2
    assert nephele(cloud, "template", "list", "--filter", "project").returncode == 2  # not KEY=VALUE


def test_a_bad_or_expired_token_and_an_unreachable_server(cloud: dict[str, Any]) -> None:
    assert nephele(cloud, "vm", "list").returncode == 0
    ApiToken.objects.filter(name="given").update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = nephele(cloud, "vm", "list")
    assert expired.returncode == 5 and "401" in expired.stderr, expired.stderr
    bad = nephele(cloud, "vm", "list", env={"NEPHELE_TOKEN": "nph_not-a-real-token"})
    assert bad.returncode == 5
    assert ok_json(cloud, "logout")["profile"] == "clio"  # an expired token: nothing to revoke, the profile goes
    assert "clio" not in json.loads(cloud["config"].read_text())["profiles"]
    nephele(cloud, "login", "--url", f"http://127.0.0.1:{free_port()}", "--token", cloud["token"], "--as", "gone")
    down = nephele(cloud, "--profile", "gone", "vm", "list")
    assert down.returncode == 6 and "cannot reach" in down.stderr
    assert nephele(cloud, "--profile", "nobody", "vm", "list").returncode == 5  # not logged in


def test_shell_completion(cloud: dict[str, Any]) -> None:
    script = nephele(cloud, "--show-completion", "bash")
    assert script.returncode == 0 and "_NEPHELE_COMPLETE" in script.stdout
    # what the shell asks for when the user types `nephele ima<TAB>`
    words = nephele(cloud, env={"_NEPHELE_COMPLETE": "complete_bash", "COMP_WORDS": "nephele ima", "COMP_CWORD": "1"})
    assert words.returncode == 0 and "image" in words.stdout.split()


def test_quota_defaults_through_the_cli(cloud: dict[str, Any]) -> None:
    """Cloud-wide defaults (``quota show --defaults``, ``quota set --default``), a limit past the
    bound refused naming the field, and a project admin who reads quotas but may not set them."""
    done = admin_json(cloud, "quota", "set", "vcpu", "12")
    assert {q["resource"]: q["limit"] for q in done}["vcpu"] == 12
    shown = nephele(cloud, "quota", "show")
    assert shown.returncode == 0 and "12" in shown.stdout, shown.stderr
    admin_json(cloud, "quota", "set", "images", "7", "--default")
    listed = admin_json(cloud, "quota", "show", "--defaults")
    assert {q["resource"]: q["limit"] for q in listed}["images"] == 7
    bad = nephele(cloud, "--profile", "root", "quota", "set", "vcpu", str(10**16), "--default")
    assert bad.returncode == 1 and "limit" in bad.stderr, bad.stderr
    refused = nephele(cloud, "quota", "set", "vcpu", "99")
    assert refused.returncode == 5, refused.stderr
