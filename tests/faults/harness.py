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
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.peers.rabbitmq import prepare_node

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / ".cache" / "guest"  # make guest: a Debian kernel and a busybox initramfs
#: how long after a fault's end the cloud must be clean
CLEAN_WITHIN_S = 90
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
    agent = f"a{i}" if sys.argv[3] == "1" else "local"  # one agent per hypervisor, or one for all
    services.register_host(admin, name=f"sim{i}", uri=uri, hypervisor="test", agent=agent)
guest = None
if sys.argv[4]:  # a real host: libvirtd + QEMU (TCG), the test guest built by make guest
    from tests.factories import BootImageFactory
    agent = f"a{int(sys.argv[2])}" if sys.argv[3] == "1" else "local"
    services.register_host(admin, name="qemu0", uri="qemu:///system", hypervisor="qemu", agent=agent)
    image = BootImageFactory(project=project, owner=admin, name="guest", kind="kernel",
                             kernel_path=f"{sys.argv[4]}/vmlinuz", initrd_path=f"{sys.argv[4]}/initrd.img",
                             cmdline="console=ttyS0 quiet nephele.marker=vm-{vm_name}")
    guest = VMTemplateFactory(project=project, owner=member, name="guest", vcpu=1, memory_mb=128, disk_gb=0,
                              boot_image=image, hypervisor="qemu").pk
_token, secret = credentials.create_token(member, name="faults")
print(json.dumps({"token": secret, "project": project.pk, "template": template.pk, "guest": guest}))
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
    want = (on.aggregate(s=Sum("vcpu"))["s"] or 0, on.aggregate(s=Sum("memory_mb"))["s"] or 0, on.count())
    if (h.alloc_vcpu, h.alloc_memory_mb, h.alloc_vms) != want:
        drift.append(f"host {h.name}: alloc {(h.alloc_vcpu, h.alloc_memory_mb, h.alloc_vms)}, recount {want}")
# the real QEMU host: a RUNNING VM has a running domain, and every domain of ours has a live VM
from django.conf import settings
from compute.drivers.registry import get_driver
domains = []
for h in Host.objects.filter(uri="qemu:///system"):
    ours = {d.name: d for d in get_driver(h.driver, h.uri).list_domains()
            if d.name.startswith(settings.NEPHELE_DOMAIN_PREFIX + "-")}
    on_host = {vm.domain_name: vm for vm in alive.filter(host=h)}
    for name, vm in on_host.items():
        if vm.state == S.RUNNING and (name not in ours or ours[name].power_state.value != "running"):
            domains.append(f"VM {vm.pk} RUNNING without a running domain")
        if vm.state == S.UNKNOWN:  # a real host keeps its domains whatever happens to the agent
            domains.append(f"VM {vm.pk} UNKNOWN on the real host")
    domains += [f"domain {name} without a VM" for name in ours if name not in on_host]
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
    "domains": domains,
}))
"""


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper


LEADERS = """
import django
django.setup()
from django.db import connection
from portal.leader import LOCK_KEY
with connection.cursor() as cur:
    cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = %s"
                " AND granted", [LOCK_KEY])
    print(cur.fetchone()[0])
"""


class Cloud:
    """``broker="redis"`` (the embedded default) or ``"rabbitmq"`` (the production broker: a
    private node with quorum queues and publisher confirms; Redis then only caches and fans out)."""

    made = 0

    def __init__(
        self, hosts: int = 2, broker: str = "redis", *, webs: int = 1, workers: int = 1, beats: int = 1,
        agent_per_host: bool = False, qemu: bool = False, env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.extra_env = env or {}
        Cloud.made += 1
        #: libvirt domain names of this cloud's VMs (the real host is shared with other runs)
        self.prefix = f"nfault{os.getpid()}c{Cloud.made}"
        self.qemu = qemu
        self.svc = _services_module()
        self.run = self.svc.Run()
        self.dir = Path(tempfile.mkdtemp(prefix="nephele-faults-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.hosts = hosts
        self.redis_port = free_port()
        self.web_ports = [free_port() for _ in range(webs)]
        self.web_port = self.web_ports[0]
        self.layout = {
            "web": webs,
            "worker": workers,
            "beat": beats,
            "agent": hosts + int(qemu) if agent_per_host else 1,
        }
        self.agent_per_host = agent_per_host
        self._next_web = 0
        # what a load balancer knows: requests in flight per web port, and ports taken out of rotation
        self._lb = threading.Lock()
        self.in_flight = dict.fromkeys(self.web_ports, 0)
        self.draining: set[int] = set()
        self.redis: subprocess.Popen[bytes] | None = None
        self.broker = broker
        self.amqp_port = free_port()
        self.rabbit: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ servers
    def start(self) -> None:
        if self.qemu and not (GUEST / "vmlinuz").exists():
            raise AssertionError("the fault tier's real host needs the test guest and libvirtd: run `make test`")
        self.run.make_dir()
        db_url = self.run.start_postgres()
        self.start_redis()
        if self.broker == "rabbitmq":
            self.start_rabbitmq()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")},
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "NEPHELE_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "NEPHELE_STATE_DIR": str(self.dir / "state"),
            "NEPHELE_DOMAIN_PREFIX": self.prefix,
            "NEPHELE_STEP_DEADLINE_S": "6",
            "NEPHELE_STEP_MAX_TRIES": "20",
            "NEPHELE_SWEEP_INTERVAL_S": "2",
            "NEPHELE_OUTBOX_RELAY_S": "1",
            "NEPHELE_DB_POOL_TIMEOUT": "3",
            "NEPHELE_HOST_FAILED_PROBES": "1000",  # outages of the broker are not host failures here
        }
        self.env.update(self.extra_env)
        if self.broker == "rabbitmq":
            self.env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//"
        self.manage("migrate", "--noinput", "-v0")
        seeded = subprocess.run(
            [PY, "-c", SEED, str(self.dir / "sim"), str(self.hosts), str(int(self.agent_per_host)),
             str(GUEST) if self.qemu else ""], cwd=ROOT, env=self.env,
            capture_output=True, text=True, check=True, timeout=180,
        )  # fmt: skip
        self.seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        for kind, count in self.layout.items():
            for i in range(count):
                self.start_process(self.instance(kind, i))
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

    def start_rabbitmq(self) -> None:
        """A private RabbitMQ node (its own name, ports and data folder), so it may be killed; its
        quorum queues survive that on disk. It runs as root from Debian's package: no su wrapper,
        so the node is in this process group and SIGKILL reaches it."""
        base = self.dir / "rabbitmq"
        if not hasattr(self, "dist_port"):
            self.dist_port = free_port()
        env = {**os.environ, **prepare_node(base, f"nfault{os.getpid()}@localhost", self.amqp_port, self.dist_port)}
        log = open(self.dir / "rabbitmq.log", "ab")  # noqa: SIM115 - lives as long as the node
        self.rabbit = subprocess.Popen(
            [RABBITMQ_SERVER], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait(lambda: self._port_open(self.amqp_port), 120, "RabbitMQ")

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def stop_rabbitmq(self) -> None:
        assert self.rabbit is not None
        os.killpg(self.rabbit.pid, signal.SIGKILL)  # as a crash
        self.rabbit.wait()

    def stop_broker(self) -> None:
        (self.stop_rabbitmq if self.broker == "rabbitmq" else self.stop_redis)()

    def start_broker(self) -> None:
        (self.start_rabbitmq if self.broker == "rabbitmq" else self.start_redis)()

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
    @staticmethod
    def instance(kind: str, i: int) -> str:
        """Process names: ``web``, ``web1``, ``web2`` … (the first of each kind has no number)."""
        return kind if i == 0 else f"{kind}{i}"

    def instances(self) -> list[str]:
        return [self.instance(kind, i) for kind, count in self.layout.items() for i in range(count)]

    def start_process(self, name: str) -> None:
        kind = name.rstrip("0123456789")
        i = int(name[len(kind) :] or 0)
        agent = f"a{i}" if self.agent_per_host else "local"
        argv = {
            "web": [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_ports[i] if kind == "web" else 0),
                    "portal.asgi:application"],
            "worker": [PY, "-m", "celery", "-A", "portal", "worker", "-n", f"scheduler{i}@faults", "-Q", "nephele",
                       "-c", "4", "-P", "threads", "-l", "WARNING"],
            "beat": [PY, "-m", "celery", "-A", "portal", "beat", "-l", "WARNING", "-s", str(self.dir / f"beat{i}")],
            "agent": [PY, "manage.py", "nephele_agent", "--agent", agent, "--loglevel", "WARNING"],
        }[kind]  # fmt: skip
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        """A rolling restart's step, as docs/operations.md describes it: a web process is first
        taken out of the load balancer's rotation and its requests in flight are let finish;
        then SIGTERM (a worker or agent finishes the tasks it holds), wait for it to exit, start
        it again, wait until it serves, and put it back into rotation."""
        port = self.web_ports[int(name[3:] or 0)] if name.startswith("web") else None
        if port is not None:
            with self._lb:
                self.draining.add(port)
            self.wait(lambda: self.in_flight[port] == 0, 60, f"{name} drained")
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{name} did not stop within 90 s of SIGTERM") from None
        self.start_process(name)
        if port is not None:
            self.wait(lambda: self._port_open(port), 60, f"{name} serving again")
            with self._lb:
                self.draining.discard(port)
        else:
            time.sleep(4)  # a worker, beat or agent connects and consumes within seconds

    def beat_leaders(self) -> int:
        """How many beat processes hold the scheduler's advisory lock (portal/leader.py)."""
        out = subprocess.run([PY, "-c", LEADERS], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)
        if self.qemu:
            self.remove_domains()
        if self.redis is not None and self.redis.poll() is None:
            self.stop_redis()
        if self.rabbit is not None and self.rabbit.poll() is None:
            self.stop_rabbitmq()
        self.run.cleanup()
        keep = ROOT / "artifacts" / "faults"  # the processes' logs, for a failed run's post-mortem
        keep.mkdir(parents=True, exist_ok=True)
        for log in self.dir.glob("*.log"):
            shutil.copy(log, keep / f"{self.broker}-{log.name}")
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ the API and the state
    def http(self, method: str, path: str, body: Any = None, key: str = "") -> tuple[int, Any]:
        """One request, spread over the web processes as a load balancer would: round robin, and
        a process that refuses the connection (it is restarting) is skipped for the next one."""
        headers = {"Authorization": f"Bearer {self.seed['token']}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if body is not None else None
        with self._lb:
            self._next_web += 1
            first = self._next_web % len(self.web_ports)
            ports = [p for p in self.web_ports[first:] + self.web_ports[:first] if p not in self.draining]
        answer: tuple[int, Any] = (0, "no web process")
        for port in ports:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                         headers=headers)  # fmt: skip
            with self._lb:
                self.in_flight[port] += 1
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()[:300]
            except urllib.error.URLError as exc:
                answer = (0, str(exc))
                if not isinstance(exc.reason, ConnectionRefusedError):
                    return answer
            except (ConnectionError, TimeoutError) as exc:
                return 0, str(exc)
            finally:
                with self._lb:
                    self.in_flight[port] -= 1
        return answer

    def remove_domains(self) -> None:
        """This cloud's domains on the real host, whatever state they were left in."""
        import libvirt

        conn = libvirt.open("qemu:///system")
        try:
            for dom in conn.listAllDomains():
                if dom.name().startswith(self.prefix + "-"):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        finally:
            conn.close()

    def terminate_guests(self) -> None:
        status, page = self.http("GET", "/api/v1/vms/?limit=1000")
        assert status == 200, page
        for vm in page["results"]:
            if vm["name"].endswith("-q") and vm["state"] != "DONE":
                answer = self.http("POST", f"/api/v1/vms/{vm['id']}/action/", {"action": "terminate", "hard": True})
                assert answer[0] == 202, answer

    def create(self, name: str) -> tuple[int, Any]:
        """A VM of the simulated hosts' template, or, for a name ending in ``-q``, of the real QEMU
        host's (a TCG guest)."""
        template = self.seed["guest"] if name.endswith("-q") else self.seed["template"]
        body = {"name": name, "project": self.seed["project"], "template": template}
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


def burst(
    cloud: Cloud, prefix: str, count: int, clients: int = 3, spread_s: float = 6.0, retry: bool = True
) -> tuple[list[Any], Callable]:
    """Creates from ``clients`` threads over ``spread_s``; each retries once on no answer (same
    key) unless ``retry`` is false (then every first answer is what is recorded)."""
    answers: list[Any] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for n in range(i, count, clients):
            # two VMs of each burst boot on the real QEMU host when the cloud has one (2 vCPUs)
            name = f"{prefix}-{n}" + ("-q" if cloud.qemu and n in (0, count // 2) else "")
            status, body = cloud.create(name)
            if retry and status in (0, 503):  # no answer or overloaded: retry with the same key, as a client would
                time.sleep(2)
                status, body = cloud.create(name)
            with lock:
                answers.append((name, status, body))
            time.sleep(spread_s / max(1, count / clients))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()

    def join() -> None:
        for t in threads:
            t.join(timeout=180)

    return answers, join


def settle(cloud: Cloud, answers: list[Any], recovered_at: float, what: str) -> dict[str, Any]:
    try:
        state = cloud.wait(cloud.clean, CLEAN_WITHIN_S, f"{what}: a clean state")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last state: {cloud.check()}") from None
    figure = time.monotonic() - recovered_at
    errors = sum(1 for a in answers if a[1] >= 500 and a[1] != 503)
    print(
        f"\nfault {what}: clean {figure:.1f} s after recovery; stuck {state['transient'] + state['busy']}, "
        f"duplicates {state['duplicates']}, 500s {errors}; states {state['by_state']}"
    )
    assert [a for a in answers if a[1] == 500] == [], "500s"
    assert state["drift"] == [], state["drift"]
    assert state["duplicates"] == 0
    assert state["unaudited"] == []
    assert state["failures"] == 0, state["by_state"]
    assert state["domains"] == [], state["domains"]
    # what a client could not get accepted it retries once the cloud is back: nothing is lost
    for name, status, _body in answers:
        if status != 202:
            assert cloud.create(name)[0] == 202, name
    cloud.wait(cloud.clean, CLEAN_WITHIN_S, f"{what}: clean after the retries")
    if cloud.qemu:  # the real host's guests go: their domains with them (and it has room again)
        cloud.terminate_guests()
        done = cloud.wait(cloud.clean, CLEAN_WITHIN_S, f"{what}: clean after terminating the guests")
        assert done["domains"] == [], done["domains"]
    return state
