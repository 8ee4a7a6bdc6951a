#!/usr/bin/env python3
"""`make screenshots`: regenerate the README's docs/screenshots/vm-list.png and the page
gallery in artifacts/screenshots/.

It is not a test (it asserts nothing and rewrites a tracked file): it builds a small cloud —
three simulated hosts, VMs in several states — on a database of its own
(``nephele_screenshots_<pid>`` on the PostgreSQL of ``DATABASE_URL``, dropped at the end; a
temporary SQLite file for any other URL), serves it the way ``make run`` does (daphne, the
scheduler worker and the host agent, on Redis DB 14 of ``REDIS_URL``) and photographs the
pages with Debian's Chromium driven by Playwright. ``make screenshots`` provides throwaway
servers when the variables are unset (scripts/test-services.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "screenshots"
README_SHOT = ROOT / "docs" / "screenshots" / "vm-list.png"
PY = sys.executable
PASSWORD = secrets.token_urlsafe(12)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]  # fmt: skip
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[screenshots] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"[screenshots] timed out waiting for {what}")


@contextlib.contextmanager
def own_database() -> Iterator[str]:
    """A database of our own on the server of DATABASE_URL, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("DATABASE_URL is unset: run `make screenshots` (it starts throwaway servers)")
    if not url.startswith(("postgres://", "postgresql://")):
        with tempfile.TemporaryDirectory(prefix="nephele-shots-") as tmp:
            yield f"sqlite:///{tmp}/screenshots.sqlite3"
        return
    import psycopg

    server, name = url.rsplit("/", 1)[0], f"nephele_screenshots_{os.getpid()}"
    admin = f"{server}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """make run's processes (own process groups), stopped together."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def build_scene() -> dict[str, Any]:
    """Users, a project, a template, three simulated hosts; returns what the pages need."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from compute import services
    from compute.drivers.registry import get_driver
    from compute.drivers.simulated import write_node
    from compute.models import Cluster, VMTemplate
    from tenants.models import Membership, Organization, Project
    from tenants.roles import Role

    User = get_user_model()
    admin = User.objects.create_superuser("admin", "admin@example.org", PASSWORD)
    member = User.objects.create_user("demo", "demo@example.org", PASSWORD)
    project = Project.objects.create(organization=Organization.objects.create(name="demo"), name="demo")
    Membership.objects.create(user=member, project=project, role=Role.MEMBER)
    template = VMTemplate.objects.create(
        project=project, owner=admin, name="standard", vcpu=2, memory_mb=1024, disk_gb=10, hypervisor="test"
    )
    rack = Cluster.objects.create(name="rack-1")
    sim = Path(settings.NEPHELE_STATE_DIR) / "sim"
    for name, vcpu, memory_mb, extra in (
        ("kvm-01", 16, 32768, {"cluster": rack}),
        ("kvm-02", 16, 32768, {"cluster": rack, "labels": {"ssd": "yes"}}),
        ("edge-01", 8, 16384, {}),
    ):
        uri = write_node(sim, name, vcpu, memory_mb, 500)
        host = services.register_host(admin, name=name, uri=uri, hypervisor="test", **extra)
        services.record_probe(host.pk, get_driver("libvirt", uri).host_info())
    return {"admin": admin, "member": member, "project": project, "template": template}


def place_vms(scene: dict[str, Any]) -> Any:
    """VMs running, powered off, suspended, on hold and unschedulable; returns the database VM."""
    from compute import services
    from compute.models import VirtualMachine
    from compute.states import VMState as S

    member, kw = scene["member"], {"project": scene["project"], "template": scene["template"]}

    def act(vm: Any, action: str) -> None:
        services.perform_action(member, vm.pk, services.ActionRequest(action=action))

    web = services.create_vms(member, name="web", count=3, **kw)
    (db,) = services.create_vms(member, name="db-primary", vcpu=4, memory_mb=8192, **kw)
    (cache,) = services.create_vms(member, name="cache", **kw)
    wait_for(lambda: VirtualMachine.objects.filter(state=S.RUNNING).count() == 5, "5 RUNNING VMs")
    act(web[2], "poweroff")
    act(cache, "suspend")
    services.create_vms(member, name="ci-runner", hold=True, **kw)
    services.create_vms(member, name="analytics", vcpu=32, memory_mb=65536, **kw)
    wait_for(
        lambda: VirtualMachine.objects.filter(state__in=[S.POWEROFF, S.SUSPENDED]).count() == 2, "poweroff + suspend"
    )
    wait_for(
        lambda: VirtualMachine.objects.filter(name="analytics").exclude(schedule_message="").exists(),
        "the scheduler's message for the VM that fits nowhere",
    )
    return db


def photograph(base: str, db_pk: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        raise SystemExit("Debian's chromium is not installed: run `make deps`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str, **kw: Any) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), **kw)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 760})
        page.set_default_timeout(30_000)
        page.goto(f"{base}/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/compute/vms/?project=all")
        page.wait_for_selector("#live-indicator.on", timeout=15_000)  # the live state is pushed
        shot(page, "vm-list")
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / "vm-list.png", README_SHOT)

        page.set_viewport_size({"width": 1440, "height": 900})
        for name, path in (
            ("dashboard", "/"), ("hosts", "/compute/hosts/"), ("vm-detail", f"/compute/vms/{db_pk}/"),
            ("templates", "/compute/templates/"), ("events", "/events/"), ("identity", "/identity/"),
            ("account", "/account/"),
        ):  # fmt: skip
            page.goto(f"{base}{path}")
            shot(page, name, full_page=True)
        page.emulate_media(color_scheme="dark")
        page.goto(f"{base}/compute/vms/?project=all")
        page.locator(f"#vm-{db_pk} details.more summary").click()
        shot(page, "vm-list-dark")
        page.goto(f"{base}/")
        shot(page, "dashboard-dark", full_page=True)
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 820, "height": 900})
        page.goto(f"{base}/compute/vms/?project=all")
        shot(page, "vm-list-narrow", full_page=True)
        page.context.clear_cookies()
        page.goto(f"{base}/login/")
        shot(page, "login")
        browser.close()


def main() -> None:
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is unset: run `make screenshots` (it starts throwaway servers)")
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/14"
    with contextlib.ExitStack() as stack:  # unwinds in reverse: processes, then database, then logs
        state = Path(tempfile.mkdtemp(prefix="nephele-shots-"))
        stack.callback(shutil.rmtree, state, ignore_errors=True)
        db_url = stack.enter_context(own_database())
        os.environ.update(
            DJANGO_SETTINGS_MODULE="portal.settings", DATABASE_URL=db_url, REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url, NEPHELE_STATE_DIR=str(state), NEPHELE_DOMAIN_PREFIX=f"nshots{os.getpid()}",
        )  # fmt: skip
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        redis.Redis.from_url(redis_url).flushdb()
        log(f"database {db_url}, broker {redis_url}")
        call_command("migrate", verbosity=0, interactive=False)
        scene = build_scene()
        procs = Processes(dict(os.environ), state)
        stack.callback(procs.stop)
        celery = [PY, "-m", "celery", "-A", "portal"]
        procs.spawn("agent", [PY, "manage.py", "nephele_agent", "--loglevel", "WARNING"])
        procs.spawn("worker", [*celery, "worker", "-n", "scheduler@%h", "-Q", "nephele", "-c", "2", "-l", "WARNING"])
        port = free_port()
        procs.spawn("web", [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"])
        try:
            db = place_vms(scene)
            wait_for(lambda: port_open(port), "daphne", timeout=60)
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs a loop in this thread
            photograph(f"http://127.0.0.1:{port}", db.pk)
        except BaseException:
            for logfile in sorted(state.glob("*.log")):
                lines = logfile.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {logfile.name} (last lines)", *lines, sep="\n", file=sys.stderr)
            raise
    log(f"wrote {README_SHOT.relative_to(ROOT)} and {ARTIFACTS.relative_to(ROOT)}/*.png")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    main()
