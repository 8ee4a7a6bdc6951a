#!/usr/bin/env python3
"""`make run`: set up and serve Nephele with demo data, and stop everything on Ctrl-C.

Starts, as children in their own process groups: a private Redis (only when REDIS_URL is
unset), the ASGI server (daphne, HTTP + websockets) on 127.0.0.1:$PORT (default 8000), a Celery worker for
scheduling, the host agent, and Celery beat. A child that exits is started again (after 1, 2,
4 … 30 s; logged in the terminal and its .run/<name>.log). Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
PY = sys.executable
children: list[subprocess.Popen[bytes]] = []
#: how to start each supervised child again: name → (argv, env), and its back-off state
recipes: dict[str, tuple[list[str], dict[str, str]]] = {}
stopping = False


def log(msg: str) -> None:
    print(f"[nephele] {msg}", flush=True)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    logf = open(RUN / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
    log(f"starting {name}: {' '.join(argv)}  (log: .run/{name}.log)")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    children.append(proc)
    recipes[name] = (argv, env)
    names[proc.pid] = name
    return proc


names: dict[int, str] = {}


def supervise() -> None:
    """Start again every child that exited, with a per-child back-off (reset after a minute up)."""
    backoff: dict[str, float] = {}
    started: dict[str, float] = {name: time.monotonic() for name in recipes}
    due: dict[str, float] = {}
    while not stopping:
        now = time.monotonic()
        for proc in list(children):
            if proc.poll() is None:
                continue
            name = names.pop(proc.pid, "?")
            children.remove(proc)
            if now - started.get(name, now) > 60:
                backoff[name] = 1.0
            wait = backoff.get(name, 1.0)
            backoff[name] = min(wait * 2, 30.0)
            due[name] = now + wait
            log(f"{name} exited (code {proc.returncode}); starting it again in {wait:.0f} s — see .run/{name}.log")
        for name, when in list(due.items()):
            if now >= when:
                del due[name]
                started[name] = now
                spawn(name, *recipes[name])
        time.sleep(0.5)


def stop_all(*_: object) -> None:
    global stopping
    stopping = True
    log("stopping…")
    for proc in reversed(children):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + 10
    for proc in children:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log("stopped")
    sys.exit(0)


def main() -> None:
    RUN.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    port = int(env.get("PORT") or 8000)
    # the browser's forms post from the served address: portal/settings.py derives the trusted
    # origins from PORT and NEPHELE_ALLOWED_HOSTS (unless NEPHELE_CSRF_TRUSTED_ORIGINS is set)
    env["PORT"] = str(port)
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    if "REDIS_URL" not in env:
        redis_port = 6399
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        if not port_open("127.0.0.1", redis_port):
            server = shutil.which("redis-server")
            if server is None:
                sys.exit("redis-server not found: run `make deps` or set REDIS_URL")
            spawn(
                "redis",
                [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                env,
            )
            for _ in range(50):
                if port_open("127.0.0.1", redis_port):
                    break
                time.sleep(0.1)
    log(f"database: {env.get('DATABASE_URL', 'sqlite (db.sqlite3)')}; broker: {env['REDIS_URL']}")
    subprocess.run([PY, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    subprocess.run([PY, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    if subprocess.run(["bash", "scripts/start-libvirtd.sh"], cwd=ROOT, env=env, check=False).returncode == 0:
        subprocess.run(["bash", "scripts/build-test-guest.sh", ".cache/guest"], cwd=ROOT, env=env, check=False)
    else:
        log("libvirtd could not be started: the local QEMU host is skipped")
    celery = [PY, "-m", "celery", "-A", "portal"]
    spawn("agent", [PY, "manage.py", "nephele_agent"], env)
    spawn("worker", [*celery, "worker", "-n", "scheduler@%h", "-Q", "nephele", "-c", "2", "-l", "INFO"], env)
    spawn("beat", [*celery, "beat", "-l", "INFO", "-s", str(RUN / "celerybeat-schedule")], env)
    subprocess.run([PY, "manage.py", "load_demo"], cwd=ROOT, env=env, check=True)
    spawn("web", [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"], env)
    log(f"Nephele is serving on http://127.0.0.1:{port}  (API: /api/v1/, docs: /api/v1/docs/) — Ctrl-C stops it")
    supervise()


if __name__ == "__main__":
    main()
