"""Browser consoles: one-time console tokens, the access check of an open session, its audit.

A token (Nova CVE-2013-0335) is a random string handed to one user for one console of one VM;
Redis keeps only its SHA-256 with the user, VM and kind, for ``NEPHELE_CONSOLE_TOKEN_TTL_S``
seconds, and the websocket consumes it with ``GETDEL`` (atomic: a second use finds nothing).
Holding a token is not enough: at connect time, and every ``NEPHELE_CONSOLE_RECHECK_S`` while
the session is open, ``session_target`` re-reads the user (active), the access gate
(``manage`` on the VM's project) and the VM's state (RUNNING); the session ends when any of
them fails. Every session's start and end is an audit record (``monitoring.audit``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from redis.exceptions import RedisError

from monitoring.audit import record_action
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceError
from tenants.querysets import Actor

from ..drivers import registry
from ..models import VirtualMachine
from ..states import VMState

KINDS = ("serial", "vnc")


class ConsoleUnavailable(ServiceError):
    """The token store (Redis) cannot be reached."""

    status = 503


@dataclass(frozen=True)
class ConsoleTicket:
    """What a client needs to open a console: the websocket path and its one-time token."""

    vm_id: int
    kind: str
    token: str
    path: str  # the websocket's path, token included (``/ws/console/<vm>/<kind>/?token=…``)
    expires_at: datetime


@dataclass(frozen=True)
class ConsoleTarget:
    """Where an open session's bytes go (plain values for the driver code)."""

    vm_id: int
    uri: str
    domain: str


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _key(token: str) -> str:
    db = settings.DATABASES["default"].get("NAME", "")
    return f"nephele.console.{db}.{hashlib.sha256(token.encode()).hexdigest()}"


def console_log_path(vm: VirtualMachine) -> Path:
    """The file the VM's host writes the guest's serial output to (appended across boots)."""
    return Path(settings.NEPHELE_STATE_DIR) / "consoles" / f"{vm.domain_name}.log"


def has_console(vm: VirtualMachine, kind: str) -> bool:
    """Whether ``vm`` offers console ``kind`` at all (its host's driver, its template)."""
    if vm.host is None:
        return False
    caps = registry.capabilities(vm.host.driver, vm.host.uri)
    if kind == "vnc":
        return bool(caps.get("console_vnc")) and vm.template is not None and vm.template.graphics
    return bool(caps.get("console_serial"))


def _manageable(actor: Actor, vm_id: Any) -> VirtualMachine:
    """The VM if ``actor`` may type into it: 404 when not visible, 403 when visible only."""
    pk = vm_id.pk if isinstance(vm_id, VirtualMachine) else vm_id
    if isinstance(pk, bool) or not str(pk).isdigit():
        raise NotFound("virtual machine not found")
    qs = VirtualMachine.objects.select_related("host", "template")
    vm = qs.restrict(actor, "manage").filter(pk=int(pk)).first()
    if vm is None:
        if qs.restrict(actor, "view").filter(pk=int(pk)).exists():
            raise PermissionDenied("opening a console needs the manage right on the VM's project (viewers cannot)")
        raise NotFound("virtual machine not found")
    return vm


def issue_token(actor: Actor, vm_id: Any, kind: str = "serial", *, ip: str | None = None) -> ConsoleTicket:
    """A one-time token for console ``kind`` (serial, vnc) of a RUNNING VM ``actor`` manages."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    vm = _manageable(actor, vm_id)
    if vm.state != VMState.RUNNING:
        raise Conflict(f"a console opens only while the VM is RUNNING (it is {vm.state})")
    if not has_console(vm, kind):
        why = (
            "this VM has no graphical console (its template does not enable graphics, or its host cannot)"
            if kind == "vnc"
            else "this VM's host offers no serial console"
        )
        raise Conflict(why, field="kind")
    user_pk = getattr(actor, "pk", None)
    if user_pk is None:
        raise PermissionDenied("a console is opened by a signed-in user")
    token = secrets.token_urlsafe(32)
    ttl = settings.NEPHELE_CONSOLE_TOKEN_TTL_S
    claim = json.dumps({"user": user_pk, "vm": vm.pk, "kind": kind})
    try:
        _client(settings.REDIS_URL).set(_key(token), claim, ex=ttl)
    except RedisError as exc:
        raise ConsoleUnavailable(f"console tokens cannot be issued right now: {exc}") from exc
    return ConsoleTicket(
        vm_id=vm.pk,
        kind=kind,
        token=token,
        path=f"/ws/console/{vm.pk}/{kind}/?token={token}",
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )


def redeem_token(token: str, vm_id: int, kind: str) -> int | None:
    """Consume ``token`` (whatever the outcome: it never works twice) and return its user's
    pk when it was issued for console ``kind`` of ``vm_id`` and has not expired; else None."""
    if not token or len(token) > 256:
        return None
    try:
        raw = _client(settings.REDIS_URL).getdel(_key(token))
    except RedisError:
        return None
    if raw is None:
        return None
    try:
        claim = json.loads(raw)
        user, vm, claimed_kind = int(claim["user"]), int(claim["vm"]), str(claim["kind"])
    except (ValueError, KeyError, TypeError):
        return None
    if vm != vm_id or claimed_kind != kind:
        return None
    return user


def session_target(user_id: int, vm_id: int, kind: str) -> ConsoleTarget | None:
    """Where the session of ``user_id`` on console ``kind`` of ``vm_id`` goes, if it may (still)
    be open: the user is active and manages the VM, which is RUNNING on a host offering it."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    vm = (
        VirtualMachine.objects.restrict(user, "manage")
        .select_related("host", "template")
        .filter(pk=vm_id, state=VMState.RUNNING)
        .first()
    )
    if vm is None or vm.host is None or not has_console(vm, kind):
        return None
    return ConsoleTarget(vm_id=vm.pk, uri=vm.host.uri, domain=vm.domain_name)


def record_session(user_id: int, vm_id: int, kind: str, phase: str, *, ip: str | None = None, **detail: Any) -> None:
    """The audit record of a console session's ``phase``: ``open``, ``refused`` or ``close``."""
    user = get_user_model().objects.filter(pk=user_id).first()
    vm = VirtualMachine.objects.filter(pk=vm_id).first()
    if vm is None:
        return
    result = {"open": "accepted", "refused": "refused"}.get(phase, "done")
    action = "console" if phase == "open" else f"console.{phase}"
    record_action(user, vm, action, ip=ip, result=result, kind=kind, **detail)


def read_console_log(actor: Actor, vm_id: Any, *, max_bytes: int | None = None) -> tuple[VirtualMachine, bytes]:
    """The end of what the guest of ``vm_id`` printed on its serial console (at most
    ``max_bytes``, default ``NEPHELE_CONSOLE_LOG_MAX_BYTES``), for a user who manages it."""
    limit = settings.NEPHELE_CONSOLE_LOG_MAX_BYTES
    if max_bytes is None:
        max_bytes = limit
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 1 <= max_bytes <= limit:
        raise InvalidInput(f"bytes must be a whole number from 1 to {limit}", field="bytes")
    vm = _manageable(actor, vm_id)
    path = console_log_path(vm)
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - max_bytes))
            data = f.read(max_bytes)
    except FileNotFoundError:
        raise NotFound("this VM has no console log yet (simulated hosts keep none)") from None
    except OSError as exc:
        raise Conflict(f"the console log cannot be read: {exc.strerror}") from None
    return vm, data
