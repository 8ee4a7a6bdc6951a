#!/usr/bin/env python3
"""Event fan-out: one VM state change pushed to 1,000 websocket subscribers, over real sockets,
by the previous delivery path and the current one, in one run.

What it runs, once per path:
- the portal as it is served (``daphne portal.asgi:application``, ``BENCH_SERVERS`` processes,
  default 2 — one per core of this machine — each on its own port as behind a load balancer)
  on a database and a Redis of its own (``bench/benchenv.py``: unique names, dropped at exit);
- ``BENCH_CLIENT_PROCS`` client processes (default 4) that open ``BENCH_SUBSCRIBERS`` (1,000)
  real websockets over TCP to ``/ws/live/`` as 50 members of one project, spread round-robin
  over the servers, plus 100 sockets of another tenant's users that must receive none of
  the project's rows. The client speaks RFC 6455 itself (handshake, frame parsing, pongs, the
  page's acknowledgements) so the clients' own cost per message stays small next to the
  server's;
- then, in this process, ``BENCH_WARMUP`` (2, reported apart: a fresh process compiles its
  templates) and ``BENCH_ROUNDS`` (5) state changes of one VM through the service (release /
  hold, as a user or a worker would), one at a time, 1.5 s apart.

The paths (``BENCH_PATHS``, default both):
- ``inline`` — the previous way outside daphne's private internals: the fan-out renders once
  and then awaits each socket's ASGI ``send`` in turn, in the hub's own task (kept here only,
  patched into the servers this bench starts);
- ``writers`` — the current code: the fan-out queues the texts on every socket and each
  socket's own writer task sends them (bounded queue, ack window; compute/consumers.py).

It prints, per path and round, the time from the commit to the moment the *last* of the 1,000
sockets has received the VM's re-rendered row (the frame carrying ``id="vm-<pk>"``), and the
median over the rounds (target ≤ 300 ms). The clock is ``time.perf_counter`` (CLOCK_MONOTONIC,
shared by all processes of the machine), and the CPU the servers and the clients used per
change (psutil, 10 ms granularity). ``BENCH_DEBUG=1`` writes the servers' per-pass timings to
``/tmp/bench-events-<path>-<port>.log``. Last line: JSON.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1000"))
FOREIGN = int(os.environ.get("BENCH_FOREIGN", "100"))
SERVERS = int(os.environ.get("BENCH_SERVERS", "2"))  # one daphne per core, as docs/operations.md says
CLIENT_PROCS = int(os.environ.get("BENCH_CLIENT_PROCS", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))  # changes before the measured ones (cold templates)
MEMBERS = 50  # the subscribers are MEMBERS users with SUBSCRIBERS / MEMBERS tabs each


# --- the client side: a minimal RFC 6455 client on asyncio protocols -------------------------


class _Socket(asyncio.Protocol):
    """One websocket: records when each message containing ``marker`` arrived."""

    def __init__(self, host: str, cookie: str, marker: bytes, opened: asyncio.Future[bool]) -> None:
        self.host, self.cookie, self.marker, self.opened = host, cookie, marker, opened
        self.buf = bytearray()
        self.upgraded = False
        self.message = bytearray()
        self.received = 0
        self.arrivals: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        transport.write(
            (
                f"GET /ws/live/ HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{self.host}\r\n"
                f"Cookie: sessionid={self.cookie}\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            del self.buf[: end + 4]
            self.upgraded = b" 101 " in status
            if not self.opened.done():
                self.opened.set_result(self.upgraded)
            if not self.upgraded:
                return
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            fin, opcode, size, start = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, start = struct.unpack_from("!H", buf, 2)[0], 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, start = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < start + size:
                return
            payload = bytes(buf[start : start + size])
            del buf[: start + size]
            if opcode == 0x9:  # ping → pong (client frames are masked)
                self._send(0xA, payload)
            elif opcode == 0x8:
                if self.transport is not None:
                    self.transport.close()
            elif opcode in (0x0, 0x1, 0x2):
                self.message += payload
                if fin:
                    if self.marker in self.message:
                        self.arrivals.append(time.perf_counter())
                    self.message.clear()
                    self.received += 1
                    if self.received % 16 == 0:  # as the page does (static/js/nephele.js)
                        self._send(0x1, json.dumps({"type": "ack", "n": self.received}).encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = secrets.token_bytes(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None:
            self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


async def _client(conf: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    plan = conf["sockets"]  # [[port, cookie], ...]
    sockets: list[_Socket] = [None] * len(plan)  # type: ignore[list-item]

    async def open_one(index: int, port: int, cookie: str) -> None:
        for _attempt in range(5):  # a loaded machine may make daphne drop a slow handshake
            opened: asyncio.Future[bool] = loop.create_future()
            sock = _Socket(f"127.0.0.1:{port}", cookie, conf["marker"].encode(), opened)
            transport, _ = await loop.create_connection(lambda s=sock: s, "127.0.0.1", port)
            try:
                if await asyncio.wait_for(opened, 30):
                    sockets[index] = sock
                    return
            except TimeoutError:
                pass
            transport.abort()
        raise SystemExit(f"a websocket to :{port} could not be opened")

    # a few at a time: each accept costs the server a session, a user and a rights lookup
    # in its one database thread, and daphne drops a handshake that waits more than 5 s
    for i in range(0, len(plan), 5):
        await asyncio.gather(*(open_one(i + k, port, cookie) for k, (port, cookie) in enumerate(plan[i : i + 5])))
        if os.environ.get("BENCH_DEBUG"):
            print(f"{os.getpid()} {time.monotonic():.1f} opened {i + 5}", file=sys.stderr, flush=True)
    print("ready", flush=True)
    # the parent says how many changes it made; wait (at most 30 s) until every socket that
    # should see them has, then report
    expected = int(await loop.run_in_executor(None, sys.stdin.readline))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(s.arrivals) < expected for s in sockets[: conf["subscribers"]]):
        await asyncio.sleep(0.1)
    print(json.dumps([s.arrivals for s in sockets]), flush=True)


# --- the parent: database, servers, state changes, figures -----------------------------------


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daphne on :{port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"daphne on :{port} did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inline_fan_out() -> Any:
    """The previous delivery (kept in this bench only): render once, then await every socket's
    ASGI send in turn in the hub's task — one slow socket holds up all that come after it."""
    from compute import consumers

    async def fan_out(batch: list[tuple[dict[str, Any], list[Any]]]) -> None:
        out = consumers._Outbox()
        for message, members in batch:
            handler = consumers._FAN_OUT.get(str(message.get("type")))
            if handler is not None:
                await handler(message, members, out)
        for c, texts in out.texts.items():
            try:
                for text in texts:
                    await c.send(text_data=text)
            except (RuntimeError, OSError):  # the socket closed under us
                pass

    return fan_out


def _serve(port: str, path: str) -> None:
    """A daphne server process of the bench, with the given delivery path."""
    from daphne.cli import CommandLineInterface

    import portal.asgi  # noqa: F401  (sets Django up)

    if path == "inline":
        from compute import consumers

        consumers.HUB.deliver = _inline_fan_out()
    CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, "portal.asgi:application"])


def _run_path(path: str, vm: Any, actor: Any, cookies: list[str], foreign_cookies: list[str]) -> dict[str, Any]:
    """Servers and clients for one delivery path, the state changes, and the figures."""
    import psutil
    from django.db import transaction

    from compute import services
    from compute.services import ActionRequest

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    servers, clients = [], []
    ports = [_free_port() for _ in range(SERVERS)]
    try:
        for port in ports:
            cmd = [sys.executable, __file__, "--serve", str(port), path]
            log = None
            if os.environ.get("BENCH_DEBUG"):  # the servers' fan-out timings (compute.consumers, DEBUG)
                log = open(f"/tmp/bench-events-{path}-{port}.log", "w")  # noqa: SIM115
            server_env = {**env, "NEPHELE_LOG_LEVEL": "DEBUG"} if log else env
            servers.append(subprocess.Popen(cmd, cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=log))
        for port, proc in zip(ports, servers, strict=True):
            _wait_port(port, proc)
        plan = [[ports[i % SERVERS], cookies[i % MEMBERS], False] for i in range(SUBSCRIBERS)]
        plan += [[ports[i % SERVERS], foreign_cookies[i % len(foreign_cookies)], True] for i in range(FOREIGN)]
        marker = f'id="vm-{vm.pk}"'
        for k in range(CLIENT_PROCS):
            part = sorted(plan[k::CLIENT_PROCS], key=lambda entry: entry[2])  # subscribers first
            conf = {
                "marker": marker,
                "sockets": [[p, c] for p, c, _ in part],
                "subscribers": sum(1 for *_, f in part if not f),
            }
            proc = subprocess.Popen([sys.executable, __file__, "--client", json.dumps(conf)], cwd=ROOT, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
            clients.append((proc, [f for _, _, f in part]))
        for proc, _ in clients:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a client process failed to open its websockets")
        time.sleep(1.0)

        def cpu_of(procs: list[subprocess.Popen[Any]]) -> float:
            return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)

        commits: list[float] = []
        cpu_idle = 0.0
        for r in range(WARMUP + ROUNDS):
            if r == WARMUP:  # CPU the processes use with nothing to push, then per measured change
                idle0 = (cpu_of(servers), cpu_of([p for p, _ in clients]))
                time.sleep(1.5)
                cpu_idle = cpu_of(servers) - idle0[0] + cpu_of([p for p, _ in clients]) - idle0[1]
                cpu0 = (cpu_of(servers), cpu_of([p for p, _ in clients]))
            committed: list[float] = []
            with transaction.atomic():  # the service's own atomic block joins this one
                transaction.on_commit(lambda c=committed: c.append(time.perf_counter()))
                action = "release" if vm_state_is_hold(vm) else "hold"
                services.perform_action(actor, vm.pk, ActionRequest(action=action))
            commits.append(committed[0])
            time.sleep(1.5)
        cpu_servers = (cpu_of(servers) - cpu0[0]) / ROUNDS
        cpu_clients = (cpu_of([p for p, _ in clients]) - cpu0[1]) / ROUNDS

        per_socket: list[list[float]] = []
        leaked = 0
        for proc, foreign_flags in clients:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{WARMUP + ROUNDS}\n")
            proc.stdin.flush()
            arrivals = json.loads(proc.stdout.readline())
            for got, is_foreign in zip(arrivals, foreign_flags, strict=True):
                if is_foreign:
                    leaked += len(got)
                else:
                    per_socket.append(got)
    finally:
        for proc, _ in clients:
            proc.kill()
        for s in servers:
            s.send_signal(signal.SIGTERM)
        for s in servers:
            s.wait(10)

    if leaked:
        raise SystemExit(f"{path}: {leaked} rows of the project reached another tenant's sockets")
    missing = sum(1 for got in per_socket if len(got) != WARMUP + ROUNDS)
    if missing:
        raise SystemExit(f"{path}: {missing} of {len(per_socket)} subscribers did not receive every change")
    last_all = [1000 * (max(got[r] for got in per_socket) - commits[r]) for r in range(WARMUP + ROUNDS)]
    last = last_all[WARMUP:]
    median = [
        1000 * (statistics.median(got[r] for got in per_socket) - commits[r]) for r in range(WARMUP, WARMUP + ROUNDS)
    ]
    return {
        "warmup_last_delivery_ms": [round(x, 1) for x in last_all[:WARMUP]],
        "rounds_last_delivery_ms": [round(x, 1) for x in last],
        "last_delivery_ms": round(statistics.median(last), 1),
        "worst_last_delivery_ms": round(max(last), 1),
        "median_delivery_ms": round(statistics.median(median), 1),
        # CPU (user + system) per measured change, over its 1.5 s window, of all servers / all
        # clients, and of all of them in 1.5 s with nothing to push (pings, rights re-reads)
        "server_cpu_ms_per_change": round(1000 * cpu_servers, 1),
        "client_cpu_ms_per_change": round(1000 * cpu_clients, 1),
        "idle_cpu_ms_per_window": round(1000 * cpu_idle, 1),
    }


def vm_state_is_hold(vm: Any) -> bool:
    from compute.models import VirtualMachine
    from compute.states import VMState

    return bool(VirtualMachine.objects.filter(pk=vm.pk, state=VMState.HOLD).exists())


def main() -> None:
    from bench import benchenv

    benchenv.database("nephele_bench_events")
    benchenv.redis()
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["NEPHELE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connections

    from compute import services
    from compute.models import VMTemplate
    from tenants.models import Membership, Organization, Project

    call_command("migrate", verbosity=0)
    User = get_user_model()
    org = Organization.objects.create(name="o")
    project, foreign = (
        Project.objects.create(organization=org, name="p"),
        Project.objects.create(organization=org, name="q"),
    )

    def session_of(user: Any) -> str:
        s = SessionStore()
        s.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "tenants.security.ThrottledModelBackend",
                  "_auth_user_hash": user.get_session_auth_hash()})  # fmt: skip
        s.create()
        return str(s.session_key)

    members = [User.objects.create(username=f"watcher{i}") for i in range(MEMBERS)]
    for m in members:
        Membership.objects.create(user=m, project=project, role="member")
    outsiders = [User.objects.create(username=f"outsider{i}") for i in range(max(1, FOREIGN // 20))]
    for o in outsiders:
        Membership.objects.create(user=o, project=foreign, role="member")
    tpl = VMTemplate.objects.create(project=project, owner=members[0], name="t", vcpu=1, memory_mb=256)
    (vm,) = services.create_vms(members[0], project=project, template=tpl, name="x", hold=True)
    cookies = [session_of(m) for m in members]
    foreign_cookies = [session_of(o) for o in outsiders]
    connections.close_all()

    paths = [p for p in os.environ.get("BENCH_PATHS", "inline,writers").split(",") if p]
    results = {path: _run_path(path, vm, members[0], cookies, foreign_cookies) for path in paths}
    result = {
        "subscribers": SUBSCRIBERS,
        "foreign_sockets": FOREIGN,
        "servers": SERVERS,
        "client_processes": CLIENT_PROCS,
        "paths": results,
        "last_delivery_ms": results[paths[-1]]["last_delivery_ms"],  # the current path's
        "target_ms": 300,
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(
        f"Event fan-out: one VM state change to {SUBSCRIBERS} websocket subscribers "
        f"({SERVERS} daphne process{'es' if SERVERS > 1 else ''}, {CLIENT_PROCS} client processes, real TCP websockets)"
    )
    for path, r in results.items():
        print(
            f"  {path:8} last delivery {r['last_delivery_ms']} ms after commit (median of {ROUNDS} changes; worst "
            f"{r['worst_last_delivery_ms']} ms; rounds {r['rounds_last_delivery_ms']}), median socket "
            f"{r['median_delivery_ms']} ms; CPU per change: servers {r['server_cpu_ms_per_change']} ms, clients "
            f"{r['client_cpu_ms_per_change']} ms"
        )
    print(f"  target ≤ 300 ms (last delivery, current path); load average {result['load_average_1min']}")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        asyncio.run(_client(json.loads(sys.argv[2])))
    elif len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], sys.argv[3])
    else:
        main()
