"""A real OpenStack Nova to measure against and federate with (issue 13).

    from tests.peers.nova import nova_peer

    with nova_peer(computes=2) as nova:
        # nova.compute_url  http://127.0.0.1:PORT/v2.1  (send X-Auth-Token: nova.token)
        ...

``nova_peer()`` prepares the Nova venv (``.cache/nova-venv``, from PyPI with the pins of
``tests/peers/nova-requirements.txt``; reused while that file is unchanged), creates four
throwaway PostgreSQL databases with unique names (``novapeer_<pid>_<hex>_{api,cell0,cell1,
placement}``) on the server of ``DATABASE_URL`` (else postgres@127.0.0.1:5432), starts a
private RabbitMQ node and the Nova processes on free loopback ports, waits until every compute
is registered, mapped to cell1 and has its resource provider, creates one flavor, and yields a
``NovaPeer``. On leaving — normally, on an exception or on Ctrl-C — it stops every process it
started (by process group), drops its databases and removes its folder (``keep=True`` keeps
the folder with the logs). Its processes get SIGTERM if the process that started them dies,
even by SIGKILL (parent-death signal), and the next ``nova_peer()`` drops the databases and
folder such a run left behind.

The processes: placement-api and nova-api under gunicorn, nova-conductor, nova-scheduler and
``computes`` nova-compute with ``fake.FakeDriverWithoutFakeNodes`` (1000 vCPU, 800 GB RAM
each; its servers live in memory). nova 34 has no ``noauth2``: a paste filter
(``nova_side/novapeer_side.py``) stands in for Keystone's ``authtoken`` and accepts the one
token this peer hands out, as an admin of one project; a small HTTP server stands in for
Glance (one public image), Neutron (no ports) and Keystone (every project exists). Boot with
``"networks": "none"`` (microversion ≥ 2.37; python-novaclient negotiates 2.96 at most).

Stdlib only, so it imports into any venv: it never imports Nova; it runs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import secrets
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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # a package (tests.peers) or a script next to rabbitmq.py
    from .rabbitmq import prepare_node
except ImportError:  # pragma: no cover
    from rabbitmq import prepare_node  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "nova-requirements.txt"
SIDE = HERE / "nova_side"
# resolved: a venv's scripts name its real path in their #! line (.cache may be a symlink)
VENV = Path(os.environ.get("NOVA_PEER_VENV", ROOT / ".cache" / "nova-venv")).resolve()
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper
MICROVERSION = "2.96"
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class NovaPeerError(RuntimeError):
    """The peer could not be prepared or started; the message names the step and ends with the
    tail of the log that explains it."""


@dataclass
class NovaPeer:
    compute_url: str  #: the compute API, e.g. http://127.0.0.1:PORT/v2.1
    placement_url: str
    token: str  #: send as X-Auth-Token; it is an admin of ``project_id``
    project_id: str
    user_id: str
    image_id: str  #: the one image the Glance stand-in serves
    flavor_id: str  #: 1 vCPU, 512 MB, 1 GB disk
    hosts: list[str]  #: the nova-compute service hosts
    version: str = ""  #: nova's, e.g. 34.0.0
    microversion: str = MICROVERSION
    workdir: Path = field(default_factory=Path)  #: configuration and logs/<process>.log

    def headers(self) -> dict[str, str]:
        return {
            "X-Auth-Token": self.token,
            "OpenStack-API-Version": f"compute {self.microversion}",
            "X-OpenStack-Nova-API-Version": self.microversion,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """One call of the compute API (``path`` below ``compute_url``); the JSON answer, or
        ``None`` for an empty one. Raises ``urllib.error.HTTPError`` on 4xx/5xx."""
        return _http(method, self.compute_url + path, body, self.headers(), timeout)

    def novaclient_kwargs(self) -> dict[str, Any]:
        """What python-novaclient needs, for code that has it installed:
        ``Client(version, session=Session(auth=token_endpoint.Token(**kw)))``."""
        return {"endpoint": self.compute_url, "token": self.token}


# ----------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 60) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URLs built here
        raw = resp.read()
    return json.loads(raw) if raw else None


def _wait(check: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            if check():
                return
        time.sleep(0.3)
    raise NovaPeerError(f"{what} not ready after {timeout:.0f} s\n{on_fail()}")


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM to the child when this process dies, even by SIGKILL (Linux)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans(pg_server: str) -> None:
    """What a run killed outright (SIGKILL) left: its folder ``nova-peer-<pid>-*`` in the temp
    folder and the databases it lists, when that pid is gone. Its processes died with it
    (parent-death signal)."""
    for folder in Path(tempfile.gettempdir()).glob("nova-peer-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        listed = folder / "databases"  # removed by a clean stop: a kept folder stays
        if _pid_alive(pid) or not listed.exists():
            continue
        for name in listed.read_text().split():
            if name.startswith(f"novapeer_{pid}_"):
                subprocess.run(
                    ["psql", f"{pg_server}/postgres", "-XAtqc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                    capture_output=True, timeout=60, check=False,
                )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """The Nova venv, created (or re-created) when it is absent or its requirements changed;
    one creation at a time (a lock beside it). Returns its ``bin`` folder."""
    digest = f"{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()} {VENV}"
    marker = VENV / ".nephele-requirements"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "nova-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == digest:
            return VENV / "bin"
        log(f"[nova-peer] preparing {VENV} from {REQUIREMENTS.name} (≈ 410 MB, about a minute)")
        shutil.rmtree(VENV, ignore_errors=True)
        python = shutil.which("python3.11") or sys.executable
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for args in (["--upgrade", "pip"], ["-r", str(REQUIREMENTS)]):
            done = subprocess.run([*pip, *args], capture_output=True, text=True)
            if done.returncode:
                raise NovaPeerError(f"pip install {' '.join(args)} exited {done.returncode}\n{done.stderr[-3000:]}")
        marker.write_text(digest)
    return VENV / "bin"


# ----------------------------------------------------------------------------- the peer


class _Run:
    def __init__(self, computes: int, pg_server: str, workdir: Path, log: Callable[[str], None]) -> None:
        self.computes = computes
        self.pg_server = pg_server  # postgres://user@host:port
        self.dir = workdir
        self.log = log
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.databases: list[str] = []
        stem = f"novapeer_{os.getpid()}_{secrets.token_hex(3)}"
        self.stem = stem
        self.names = {k: f"{stem}_{k}" for k in ("api", "cell0", "cell1", "placement")}
        self.token = secrets.token_urlsafe(24)
        self.project_id = uuid.uuid4().hex
        self.user_id = uuid.uuid4().hex
        self.image_id = str(uuid.uuid4())
        self.ports = {k: _free_port() for k in ("amqp", "dist", "api", "placement", "standins")}
        self.hosts = [f"{stem.replace('_', '-')}-c{i + 1}" for i in range(computes)]

    # --------------------------------------------------------------- pieces
    def tail(self, name: str, lines: int = 40) -> str:
        path = self.dir / "logs" / f"{name}.log"
        if not path.exists():
            return f"(no log {path})"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {path} (last {len(text)} lines)\n" + "\n".join(text)

    def tails(self) -> str:
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        return "\n".join(self.tail(n) for n in (dead or list(self.procs)[-2:]))

    def psql(self, db: str, sql: str) -> str:
        done = subprocess.run(
            ["psql", f"{self.pg_server}/{db}", "-XAtqc", sql], capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise NovaPeerError(f"psql {db}: {sql}\n{done.stderr.strip()}")
        return done.stdout.strip()

    def db_url(self, key: str) -> str:
        rest = self.pg_server.split("://", 1)[1]
        return f"postgresql+psycopg2://{rest}/{self.names[key]}"

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        logf = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            argv, cwd=self.dir, env={**self.env, **(env or {})}, stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        logf.close()

    def run(self, name: str, argv: list[str], timeout: float = 300) -> str:
        with open(self.dir / "logs" / f"{name}.log", "ab") as logf:
            done = subprocess.run(
                argv, cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=logf, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        out = done.stdout.decode(errors="replace")
        if done.returncode:
            raise NovaPeerError(f"{' '.join(argv[:4])} exited {done.returncode}\n{out[-2000:]}\n{self.tail(name)}")
        return out

    # --------------------------------------------------------------- steps
    def configure(self, bindir: Path) -> None:
        (self.dir / "logs").mkdir(parents=True)
        (self.dir / "state").mkdir()
        self.bin = bindir
        self.manage = [str(bindir / "nova-manage"), "--config-file", str(self.dir / "nova.conf")]
        rabbit = f"rabbit://guest:guest@127.0.0.1:{self.ports['amqp']}/"
        standins = f"http://127.0.0.1:{self.ports['standins']}"
        placement = f"http://127.0.0.1:{self.ports['placement']}"
        service_auth = "auth_type = admin_token\ntoken = {token}\nendpoint = {endpoint}\n"
        (self.dir / "nova.conf").write_text(
            f"""[DEFAULT]
transport_url = {rabbit}
state_path = {self.dir / "state"}
compute_driver = fake.FakeDriverWithoutFakeNodes
my_ip = 127.0.0.1
host = {self.stem.replace("_", "-")}-control
allow_resize_to_same_host = True
use_stderr = True
debug = False
[api]
auth_strategy = keystone
[api_database]
connection = {self.db_url("api")}
[database]
connection = {self.db_url("cell1")}
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1
[quota]
instances = -1
cores = -1
ram = -1
[oslo_concurrency]
lock_path = {self.dir / "state" / "locks"}
[vnc]
enabled = False
[os_vif_ovs]
[placement]
{service_auth.format(token="admin", endpoint=placement)}
[neutron]
{service_auth.format(token="admin", endpoint=standins + "/network")}endpoint_override = {standins}/network
[glance]
endpoint_override = {standins}/image
num_retries = 0
[keystone]
endpoint_override = {standins}/identity
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 0
"""
        )
        (self.dir / "api-paste.ini").write_text(
            (VENV / "etc" / "nova" / "api-paste.ini")
            .read_text()
            .replace(
                "paste.filter_factory = keystonemiddleware.auth_token:filter_factory",
                f"paste.filter_factory = novapeer_side:filter_factory\ntoken = {self.token}\n"
                f"user_id = {self.user_id}\nproject_id = {self.project_id}",
            )
        )
        placement_dir = self.dir / "placement"
        placement_dir.mkdir()
        (placement_dir / "placement.conf").write_text(
            f"[DEFAULT]\ndebug = False\nuse_stderr = True\n[api]\nauth_strategy = noauth2\n"
            f"[placement_database]\nconnection = {self.db_url('placement')}\n"
        )
        for i, host in enumerate(self.hosts):
            (self.dir / f"compute{i + 1}.conf").write_text(
                f"[DEFAULT]\nhost = {host}\nstate_path = {self.dir / 'state' / host}\n"
            )
            (self.dir / "state" / host).mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL", "REDIS_URL", "OS_"))},
            "PYTHONPATH": str(SIDE),
            "OS_NOVA_CONFIG_DIR": str(self.dir),
            "OS_PLACEMENT_CONFIG_DIR": str(placement_dir),
            "HOME": str(self.dir),
        }

    def create_databases(self) -> None:
        for name in self.names.values():
            self.databases.append(name)
            (self.dir / "databases").write_text("\n".join(self.databases) + "\n")  # for sweep_orphans
            self.psql("postgres", f'CREATE DATABASE "{name}"')

    def start_rabbitmq(self) -> None:
        base = self.dir / "rabbitmq"
        env = prepare_node(base, f"{self.stem}@localhost", self.ports["amqp"], self.ports["dist"])
        self.spawn("rabbitmq", [RABBITMQ_SERVER], env)

    def sync_databases(self) -> None:
        placement = [
            str(self.bin / "placement-manage"),
            "--config-file",
            str(self.dir / "placement" / "placement.conf"),
        ]
        self.run("placement-manage", [*placement, "db", "sync"])
        self.run("nova-manage", [*self.manage, "api_db", "sync"])
        self.run("nova-manage", [*self.manage, "cell_v2", "map_cell0", "--database_connection", self.db_url("cell0")])
        _wait(lambda: _port_open(self.ports["amqp"]), 120, "RabbitMQ", lambda: self.tail("rabbitmq"))
        self.run("nova-manage", [*self.manage, "cell_v2", "create_cell", "--name", "cell1", "--verbose"])
        self.run("nova-manage", [*self.manage, "db", "sync"])

    def start_services(self) -> None:
        py = str(self.bin / "python")
        self.spawn(
            "standins", [py, str(SIDE / "novapeer_side.py"), "standins", str(self.ports["standins"]), self.image_id]
        )
        gunicorn = [str(self.bin / "gunicorn"), "--no-control-socket", "--workers", "1", "--threads", "8", "--timeout", "120"]  # fmt: skip
        self.spawn("placement-api", [*gunicorn, "-b", f"127.0.0.1:{self.ports['placement']}", "novapeer_side:placement_api()"])  # fmt: skip
        self.spawn("nova-api", [*gunicorn, "-b", f"127.0.0.1:{self.ports['api']}", "novapeer_side:nova_api()"])
        conf = ["--config-file", str(self.dir / "nova.conf")]
        self.spawn("nova-conductor", [str(self.bin / "nova-conductor"), *conf])
        self.spawn("nova-scheduler", [str(self.bin / "nova-scheduler"), *conf])
        for i in range(self.computes):
            extra = ["--config-file", str(self.dir / f"compute{i + 1}.conf")]
            self.spawn(f"nova-compute-{i + 1}", [str(self.bin / "nova-compute"), *conf, *extra])

    def wait_ready(self, timeout: float) -> None:
        def alive() -> None:
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead:
                raise NovaPeerError(f"exited: {dead}\n{self.tails()}")

        def registered() -> bool:
            alive()
            rows = self.psql(self.names["cell1"], "SELECT count(*) FROM compute_nodes WHERE deleted = 0")
            return int(rows or 0) >= self.computes

        _wait(registered, timeout, "nova-compute registration", self.tails)
        self.run("nova-manage", [*self.manage, "cell_v2", "discover_hosts", "--verbose"])
        mapped = self.psql(self.names["api"], "SELECT count(*) FROM host_mappings")
        if int(mapped or 0) < self.computes:
            raise NovaPeerError(f"{mapped} of {self.computes} computes mapped to cell1\n{self.tail('nova-manage')}")

        def providers() -> bool:
            alive()
            url = f"http://127.0.0.1:{self.ports['placement']}/resource_providers"
            answer = _http("GET", url, headers={"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.14"})
            return len(answer["resource_providers"]) >= self.computes

        _wait(providers, timeout, "placement resource providers", self.tails)

    def peer(self) -> NovaPeer:
        return NovaPeer(
            compute_url=f"http://127.0.0.1:{self.ports['api']}/v2.1",
            placement_url=f"http://127.0.0.1:{self.ports['placement']}",
            token=self.token, project_id=self.project_id, user_id=self.user_id, image_id=self.image_id,
            flavor_id="", hosts=list(self.hosts), workdir=self.dir, version=self.version(),
        )  # fmt: skip

    def version(self) -> str:
        code = "import importlib.metadata as m; print(m.version('nova'))"
        return self.run("version", [str(self.bin / "python"), "-c", code]).strip()

    def wait_api(self, peer: NovaPeer, timeout: float) -> None:
        def answers() -> bool:
            if self.procs["nova-api"].poll() is not None:
                raise NovaPeerError(f"nova-api exited\n{self.tail('nova-api')}")
            try:
                peer.request("GET", "/flavors", timeout=10)
            except urllib.error.HTTPError as exc:
                raise NovaPeerError(f"nova-api answered {exc.code}: {exc.read()[:500]!r}\n{self.tail('nova-api')}")
            return True

        _wait(answers, timeout, "nova-api", lambda: self.tail("nova-api"))
        flavor = {"flavor": {"name": "np.tiny", "ram": 512, "vcpus": 1, "disk": 1, "id": "np-tiny"}}
        peer.flavor_id = peer.request("POST", "/flavors", flavor)["flavor"]["id"]

    # --------------------------------------------------------------- teardown
    def stop(self) -> None:
        """Nova's processes first, then the broker they talk to (so none spends its last
        seconds reconnecting); SIGTERM, and SIGKILL for what is left after 20 s."""
        broker = {k: p for k, p in self.procs.items() if k == "rabbitmq"}
        services = {k: p for k, p in self.procs.items() if k != "rabbitmq"}
        for group in (services, broker):
            for proc in group.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            for proc in group.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
            for proc in group.values():
                # one that ignored SIGTERM, or children left in its group (Erlang's)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        dropped = True
        for name in reversed(self.databases):
            try:
                self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except (NovaPeerError, subprocess.SubprocessError) as exc:
                dropped = False
                self.log(f"[nova-peer] could not drop {name}: {exc}")
        if dropped:
            (self.dir / "databases").unlink(missing_ok=True)


def _pg_server() -> str:
    url = os.environ.get("NOVA_PEER_DATABASE_SERVER") or os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    server = url.rsplit("/", 1)[0]
    return server.replace("postgresql://", "postgres://", 1)


@contextlib.contextmanager
def nova_peer(
    computes: int = 1, *, timeout: float = 300, keep: bool = False, log: Callable[[str], None] = print
) -> Iterator[NovaPeer]:
    """A running Nova with ``computes`` fake computes; everything it started is gone afterwards."""
    bindir = ensure_venv(log)
    pg_server = _pg_server()
    sweep_orphans(pg_server)
    workdir = Path(tempfile.mkdtemp(prefix=f"nova-peer-{os.getpid()}-"))
    run = _Run(computes, pg_server, workdir, log)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    if main and previous in (signal.SIG_DFL, None):
        # SIGTERM unwinds through the finally below instead of leaving orphans behind
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        run.configure(bindir)
        run.create_databases()
        run.start_rabbitmq()
        run.sync_databases()
        run.start_services()
        run.wait_ready(timeout)
        peer = run.peer()
        run.wait_api(peer, timeout)
        log(f"[nova-peer] ready in {time.monotonic() - started:.0f} s: {peer.compute_url} ({computes} compute(s), {workdir})")  # fmt: skip
        yield peer
    finally:
        run.stop()
        if main and previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    # python tests/peers/nova.py [COMPUTES]: start a peer, print how to reach it, wait for Ctrl-C
    with nova_peer(int(sys.argv[1]) if len(sys.argv) > 1 else 1) as nova:
        print(json.dumps({"compute_url": nova.compute_url, "token": nova.token, "project_id": nova.project_id,
                          "image_id": nova.image_id, "flavor_id": nova.flavor_id, "microversion": nova.microversion}))  # fmt: skip
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
