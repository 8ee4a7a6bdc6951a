"""A whole Nephele that can be hurt: its own PostgreSQL and Redis (so they may be stopped), a web
process (daphne), a scheduler worker, beat and a host agent as real processes, simulated hosts.

Used by ``tests/faults`` and ``bench/faults.py``. Sweeper, relay and probe intervals are short
so recovery is measured in seconds; everything else is the production code path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _services_module() -> Any:
    spec = importlib.util.spec_from_file_location("nephele_test_services", ROOT / "scripts" / "test-services.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SEED = """
import json, sys
import django
django.setup()
from pathlib import Path
from compute import services
from compute.drivers.simulated import write_node
from tenants import credentials
from tenants.quotas import set_limit
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, VMTemplateFactory
admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
member = UserFactory(username="member")
project = ProjectFactory(name="faults")
MembershipFactory(user=member, project=project, role="admin")
for resource in ("vms", "running_vms", "vcpu", "memory_mb", "system_disk_gb"):
    set_limit(project, resource, -1)
template = VMTemplateFactory(project=project, owner=member, name="tiny", vcpu=1, memory_mb=64)
for i in range(int(sys.argv[2])):
    uri = write_node(Path(sys.argv[1]), f"sim{i}", 64, 262144, 2000)
    services.register_host(admin, name=f"sim{i}", uri=uri, hypervisor="test")
_token, secret = credentials.create_token(member, name="faults")
print(json.dumps({"token": secret, "project": project.pk, "template": template.pk}))
"""

CHECK = """
import json
import django
django.setup()
from django.db.models import Count, Sum
from compute.models import Host, VirtualMachine
from compute.states import NOT_RUNNING, TRANSIENT, VMState as S
from monitoring.models import AuditRecord
from portal.models import OutboxMessage
from tenants.quotas import QuotaUsage
vms = VirtualMachine.objects.all()
by_state = dict(vms.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
alive = vms.exclude(state=S.DONE)
drift = []
for q in QuotaUsage.objects.filter(user=None):
    mine = alive.filter(project_id=q.project_id)
    want = {"vms": mine.count(), "running_vms": mine.exclude(state__in=NOT_RUNNING).count(),
            "vcpu": mine.aggregate(s=Sum("vcpu"))["s"] or 0, "memory_mb": mine.aggregate(s=Sum("memory_mb"))["s"] or 0}
    if q.resource in want and want[q.resource] != q.used:
        drift.append(f"quota {q.resource}: used {q.used}, recount {want[q.resource]}")
for h in Host.objects.all():
    on = alive.filter(host=h).exclude(state__in=[S.STOPPED, S.UNDEPLOYED])
    want = (on.aggregate(s=Sum("vcpu"))["s"] or 0, on.aggregate(s=Sum("memory_mb"))["s"] or 0)
    if (h.alloc_vcpu, h.alloc_memory_mb) != want:
        drift.append(f"host {h.name}: alloc {(h.alloc_vcpu, h.alloc_memory_mb)}, recount {want}")
names = list(vms.values_list("name", flat=True))
audited = set(AuditRecord.objects.filter(object_type="virtualmachine", action="create").values_list("object_id", flat=True))
print(json.dumps({
    "by_state": by_state,
    "transient": alive.filter(state__in=TRANSIENT).count() + alive.filter(state=S.PENDING).count(),
    "busy": alive.exclude(operation="").exclude(state__endswith="FAILURE").count(),
    "failures": alive.filter(state__endswith="FAILURE").count(),
    "drift": drift,
    "duplicates": len(names) - len(set(names)),
    "unaudited": [pk for pk in vms.values_list("pk", flat=True) if str(pk) not in audited],
    "outbox": OutboxMessage.objects.count(),
}))
"""


class Cloud:
    def __init__(self, hosts: int = 2) -> None:
        self.svc = _services_module()
        self.run = self.svc.Run()
        self.dir = Path(tempfile.mkdtemp(prefix="nephele-faults-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.hosts = hosts
        self.redis_port = free_port()
        self.web_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ servers
    def start(self) -> None:
        self.run.make_dir()
        db_url = self.run.start_postgres()
        self.start_redis()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")},
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "NEPHELE_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "NEPHELE_STATE_DIR": str(self.dir / "state"),
            "NEPHELE_DOMAIN_PREFIX": f"nfault{os.getpid()}",
            "NEPHELE_STEP_DEADLINE_S": "6",
            "NEPHELE_STEP_MAX_TRIES": "20",
            "NEPHELE_SWEEP_INTERVAL_S": "2",
            "NEPHELE_OUTBOX_RELAY_S": "1",
            "NEPHELE_DB_POOL_TIMEOUT": "3",
            "NEPHELE_HOST_FAILED_PROBES": "1000",  # outages of the broker are not host failures here
        }
        self.manage("migrate", "--noinput", "-v0")
        seeded = subprocess.run(
            [PY, "-c", SEED, str(self.dir / "sim"), str(self.hosts)], cwd=ROOT, env=self.env,
            capture_output=True, text=True, check=True, timeout=180,
        )  # fmt: skip
        self.seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        for name in ("web", "worker", "beat", "agent"):
            self.start_process(name)
        self.wait(lambda: self.http("GET", "/api/v1/hosts/")[0] in (200, 403), 60, "the web process")
        self.wait(lambda: self.check()["by_state"] is not None, 30, "the database")

    def manage(self, *args: str) -> None:
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=300)

    def start_redis(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.redis = subprocess.Popen(
            [server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.redis_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop_redis(self) -> None:
        assert self.redis is not None
        os.killpg(self.redis.pid, signal.SIGKILL)
        self.redis.wait()

    def _postgres(self) -> Any:
        return next(s for s in self.run.servers if s.name == "postgres")

    def stop_postgres(self) -> None:
        server = self._postgres()
        self._pg_argv = list(server.proc.args)
        os.killpg(server.proc.pid, signal.SIGKILL)  # as a crash: no shutdown checkpoint
        server.proc.wait()
        self.run.servers.remove(server)

    def start_postgres(self) -> None:
        account = self.svc.service_account()
        self.run.spawn("postgres", self._pg_argv, signal.SIGINT, account, self.run.pgdata)
        port = int(next(a for a in self._pg_argv if a.startswith("port=")).split("=")[1])
        self.wait(lambda: self.svc.pg_ready(self.svc.postgres_bindir(), port), 60, "PostgreSQL")

    # ------------------------------------------------------------------ processes
    def start_process(self, name: str) -> None:
        argv = {
            "web": [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port), "portal.asgi:application"],
            "worker": [PY, "-m", "celery", "-A", "portal", "worker", "-n", "scheduler@faults", "-Q", "nephele",
                       "-c", "4", "-P", "threads", "-l", "WARNING"],
            "beat": [PY, "-m", "celery", "-A", "portal", "beat", "-l", "WARNING", "-s", str(self.dir / "beat")],
            "agent": [PY, "manage.py", "nephele_agent", "--loglevel", "WARNING"],
        }[name]  # fmt: skip
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)
        if self.redis is not None and self.redis.poll() is None:
            self.stop_redis()
        self.run.cleanup()
        keep = ROOT / "artifacts" / "faults"  # the processes' logs, for a failed run's post-mortem
        keep.mkdir(parents=True, exist_ok=True)
        for log in self.dir.glob("*.log"):
            shutil.copy(log, keep / log.name)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ the API and the state
    def http(self, method: str, path: str, body: Any = None, key: str = "") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.seed['token']}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=data, method=method,
                                     headers=headers)  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()[:300]
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, str(exc)

    def create(self, name: str) -> tuple[int, Any]:
        body = {"name": name, "project": self.seed["project"], "template": self.seed["template"]}
        return self.http("POST", "/api/v1/vms/", body, key=f"create-{name}")

    def check(self) -> dict[str, Any]:
        out = subprocess.run([PY, "-c", CHECK], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return {"by_state": None, "error": out.stderr[-500:]}
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def clean(self) -> dict[str, Any] | None:
        state = self.check()
        if state.get("by_state") is None or state["transient"] or state["busy"] or state["outbox"]:
            return None
        return state

    @staticmethod
    def wait(predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except Exception:  # noqa: BLE001 - still starting
                value = None
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{what}: not reached within {timeout:.0f} s")
