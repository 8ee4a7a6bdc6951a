#!/usr/bin/env python3
"""Run a command (the test suite) with a throwaway PostgreSQL and Redis of its own.

    python3 scripts/test-services.py -- .venv/bin/python -m pytest …

``make test`` runs pytest through this. When ``DATABASE_URL`` is unset it ``initdb``s a
PostgreSQL cluster (Debian's ``postgresql`` package, /usr/lib/postgresql/<version>/bin) in
``.cache/test-services/run-<pid>-…/pg`` and serves it on a free 127.0.0.1 port, with its unix
socket in that folder and fsync off; as root it runs it as the ``postgres`` system user (or
``nobody``). When ``REDIS_URL`` is unset it starts a ``redis-server`` on another free port
(socket in the same folder, no persistence). The command gets ``DATABASE_URL`` and
``REDIS_URL`` in its environment, and so does every process it spawns (live servers, Celery
workers, agents). A variable that is already set is used as it is and nothing is started
(``.ci/run`` points both at the machine's servers).

When the command ends — passed, failed or interrupted (Ctrl-C, SIGTERM, SIGHUP) — both servers
are stopped and the folder removed; the exit status is the command's. Servers of a run that
was killed outright (SIGKILL) die with it (parent-death signal), and the next run removes
their folder. Concurrent runs do not meet: each has its own folder, ports and sockets.

Stdlib only, so it also runs before the venv exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / ".cache" / "test-services"
SOCKET_PATH_MAX = 107  # sun_path (108 bytes with the NUL)
START_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1


def log(msg: str) -> None:
    print(f"[test-services] {msg}", file=sys.stderr, flush=True)


class StartError(RuntimeError):
    pass


def free_port() -> int:
    """A port nobody listens on right now (the server may still lose a race for it: callers retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: the child gets ``sig`` when this process dies, even by SIGKILL (Linux).

    subprocess runs it after switching to ``user=``, so the setting survives the uid change."""

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A server process in its own session (so the terminal's Ctrl-C reaches only the tests)."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], stop_signal: int, logfile: Path) -> None:
        self.name, self.proc, self.stop_signal, self.logfile = name, proc, stop_signal, logfile

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {timeout:.0f}s: killing its process group")
            # the leader is not reaped yet, so its pid (= the group's id) cannot have been reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Run:
    def __init__(self) -> None:
        self.dir: Path | None = None
        self.pgdata: Path | None = None
        self.servers: list[Server] = []

    # ------------------------------------------------------------------ the run's folder
    def make_dir(self) -> Path:
        BASE.mkdir(parents=True, exist_ok=True)
        reap_stale()
        self.dir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=BASE))
        self.dir.chmod(0o711)  # the server account must reach pg/ inside
        (self.dir / "owner").write_text(f"{os.getpid()}\n")
        return self.dir

    def record(self, name: str, pid: int, marker: str) -> None:
        assert self.dir is not None
        with open(self.dir / "servers", "a") as f:
            f.write(f"{pid} {name} {marker}\n")

    def spawn(
        self, name: str, argv: list[str], stop_signal: int, account: pwd.struct_passwd | None, cwd: Path
    ) -> Server:
        assert self.dir is not None
        logfile = self.dir / f"{name}.log"
        with open(logfile, "ab") as out:
            kw: dict[str, object] = {}
            if account is not None:
                kw = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent(stop_signal), **kw,  # type: ignore[arg-type]
            )  # fmt: skip
        server = Server(name, proc, stop_signal, logfile)
        self.servers.append(server)
        return server

    # ------------------------------------------------------------------ PostgreSQL
    def start_postgres(self) -> str:
        assert self.dir is not None
        bindir = postgres_bindir()
        account = service_account()
        pgdata = self.dir / "pg"
        pgdata.mkdir(mode=0o700)
        if account is not None:
            os.chown(pgdata, account.pw_uid, account.pw_gid)
        if not usable_by(account, pgdata) or len(str(pgdata / ".s.PGSQL.65535")) > SOCKET_PATH_MAX:
            # e.g. the checkout is below /root (0700) or its path is too long for a socket
            pgdata.rmdir()
            pgdata = Path(tempfile.mkdtemp(prefix="nephele-testpg-"))
            if account is not None:
                os.chown(pgdata, account.pw_uid, account.pw_gid)
            (self.dir / "pgdata").write_text(f"{pgdata}\n")
        self.pgdata = pgdata
        self.initdb(bindir, pgdata, account)
        for _attempt in range(5):
            port = free_port()
            argv = [
                str(bindir / "postgres"), "-D", str(pgdata),
                "-c", f"port={port}", "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={pgdata}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "log_min_messages=warning", "-c", "lc_messages=C",
            ]  # fmt: skip
            server = self.spawn("postgres", argv, signal.SIGINT, account, pgdata)  # SIGINT: fast shutdown
            self.record("postgres", server.proc.pid, str(pgdata))
            if self.wait_until(server, lambda p=port: pg_ready(bindir, p)):
                break
            server.stop()
            self.servers.remove(server)
            if "already in use" not in tail(server.logfile, 10):
                raise StartError(f"PostgreSQL did not start:\n{tail(server.logfile)}")
        else:
            raise StartError(f"PostgreSQL found no free port:\n{tail(server.logfile)}")
        created = subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "nephele"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise StartError(f"createdb nephele failed: {created.stderr.strip()}")
        return f"postgres://postgres@127.0.0.1:{port}/nephele"

    def initdb(self, bindir: Path, pgdata: Path, account: pwd.struct_passwd | None) -> None:
        assert self.dir is not None
        base = [str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
        kw: dict[str, object] = {}
        if account is not None:
            kw = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        with open(self.dir / "initdb.log", "ab") as out:
            for locale in (["--locale=C.UTF-8"], ["--no-locale"]):  # C.UTF-8 like Debian's clusters
                done = subprocess.run(
                    base + locale, cwd=pgdata, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    check=False, **kw,  # type: ignore[arg-type]
                )  # fmt: skip
                if done.returncode == 0:
                    return
                for child in pgdata.iterdir():  # initdb leaves a half-made cluster behind
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise StartError(f"initdb failed:\n{tail(self.dir / 'initdb.log')}")

    # ------------------------------------------------------------------ Redis
    def start_redis(self) -> str:
        assert self.dir is not None
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(redis).exists():
            raise StartError("redis-server not found: run `make deps` (Debian package redis-server) or set REDIS_URL")
        sock = self.dir / "redis.sock"
        for _attempt in range(5):
            port = free_port()
            argv = [
                redis, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
                "--databases", "16", "--loglevel", "warning",
            ]  # fmt: skip
            if len(str(sock)) <= SOCKET_PATH_MAX:
                argv += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
            server = self.spawn("redis", argv, signal.SIGTERM, None, self.dir)
            self.record("redis", server.proc.pid, f":{port}")
            if self.wait_until(server, lambda p=port: redis_ready(p)):
                return f"redis://127.0.0.1:{port}/0"
            server.stop()
            self.servers.remove(server)
            if "already in use" not in tail(server.logfile, 10):
                raise StartError(f"redis-server did not start:\n{tail(server.logfile)}")
        raise StartError("redis-server found no free port")

    @staticmethod
    def wait_until(server: Server, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                return False
            if ready():
                return True
            time.sleep(0.1)
        return False

    # ------------------------------------------------------------------ the end
    def cleanup(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self.pgdata is not None and self.dir is not None and not self.pgdata.is_relative_to(self.dir):
            shutil.rmtree(self.pgdata, ignore_errors=True)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def postgres_bindir() -> Path:
    """Debian's /usr/lib/postgresql/<newest>/bin, else wherever ``initdb`` is on PATH."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise StartError("PostgreSQL not found: run `make deps` (Debian package postgresql) or set DATABASE_URL")


def service_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise StartError("running as root and there is neither a postgres nor a nobody user")


def usable_by(account: pwd.struct_passwd | None, folder: Path) -> bool:
    if account is None:
        return os.access(folder, os.W_OK | os.X_OK)
    probe = subprocess.run(
        ["test", "-w", str(folder), "-a", "-x", str(folder)],
        user=account.pw_uid, group=account.pw_gid, extra_groups=[], cwd="/", check=False,
    )  # fmt: skip
    return probe.returncode == 0


def pg_ready(bindir: Path, port: int) -> bool:
    probe = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-t", "2"],
        check=False,
    )  # fmt: skip
    return probe.returncode == 0


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def reap_stale() -> None:
    """Remove the folders of runs whose owner is gone, stopping servers they left behind."""
    for folder in BASE.glob("run-*"):
        try:
            owner = int((folder / "owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            if time.time() - folder.stat().st_mtime < 60:
                continue  # a run that is just starting
            owner = -1
        if owner > 0 and pid_alive(owner) and "test-services" in cmdline(owner):
            continue
        with contextlib.suppress(OSError):
            for line in (folder / "servers").read_text().splitlines():
                pid_s, _name, marker = line.split(" ", 2)
                pid = int(pid_s)
                if pid_alive(pid) and marker in cmdline(pid):
                    log(f"stopping {_name} (pid {pid}) left by an earlier run")
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            shutil.rmtree(Path((folder / "pgdata").read_text().strip()), ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    env = dict(os.environ)
    run = Run()
    child: subprocess.Popen[bytes] | None = None

    def on_signal(sig: int, _frame: object) -> None:
        if child is None:
            raise KeyboardInterrupt  # still starting: clean up and leave
        if sig != signal.SIGINT:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)
        # SIGINT (Ctrl-C): the terminal sent it to the tests too (same process group); pytest
        # stops, shows its summary and exits, then the servers are stopped below.

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        try:
            if not env.get("DATABASE_URL") or not env.get("REDIS_URL"):
                run.make_dir()
            if not env.get("DATABASE_URL"):
                env["DATABASE_URL"] = run.start_postgres()
                log(f"throwaway PostgreSQL: {env['DATABASE_URL']} (data: {run.pgdata})")
            else:
                log("DATABASE_URL is set: using it")
            if not env.get("REDIS_URL"):
                env["REDIS_URL"] = run.start_redis()
                log(f"throwaway Redis: {env['REDIS_URL']}")
            else:
                log("REDIS_URL is set: using it")
        except StartError as exc:
            log(f"ERROR: {exc}")
            return 1
        child = subprocess.Popen(argv, env=env)
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - handled by on_signal
                continue
        return rc if rc >= 0 else 128 - rc
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the cleanup itself is not interrupted
        if run.servers or run.dir is not None:
            run.cleanup()
            log("stopped the throwaway servers")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
