"""Push what changed to browsers, after commit (CONVENTIONS §8).

Services call ``publish_vm`` / ``publish_host``; the message carries only primary keys and
the consumer renders the same partial the page uses. A commit's messages go out together, one
``PUBLISH`` per group on that group's channel (``portal.fanout.publish_many``), so a server
process hears only the groups its sockets joined and fans each message out to them
(``portal.fanout``, ``compute.consumers``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

from django.db import transaction
from redis.exceptions import RedisError

from . import fanout

log = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


ADMIN_GROUP = "cloud.admin"


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """One long-lived loop per process (re-made after a fork) so the layer's Redis pool is reused."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="nephele-events", daemon=True).start()
        return _loop


_outbox: list[tuple[list[str], dict[str, Any]]] = []
_outbox_lock = threading.Lock()


async def _drain() -> None:
    """Send what the committers queued, in one round trip (a commit's pushes usually go together)."""
    with _outbox_lock:
        batch = _outbox[:]
        _outbox.clear()
    if not batch:
        return
    try:
        await fanout.publish_many(batch)
    except (RedisError, OSError) as exc:  # a push is best effort; the page also polls
        log.warning("could not publish %s: %s", ",".join(str(m.get("type")) for _, m in batch), exc)


def _send(groups: list[str], message: dict[str, Any]) -> Future[None] | None:
    """Hand the message to the process's event loop; the caller does not wait for Redis."""
    with _outbox_lock:
        _outbox.append((groups, message))
        if len(_outbox) > 1:
            return None  # a drain is already on its way and will take this one too
    return asyncio.run_coroutine_threadsafe(_drain(), _event_loop())


def publish(groups: list[str], message: dict[str, Any]) -> None:
    """Send ``message`` to ``groups`` once the current transaction commits."""
    transaction.on_commit(lambda: _send(groups, message))


def publish_vm(vm: Any) -> None:
    """A VM changed. ``v`` names this version of it, so consumers render it once per process."""
    v = f"{vm.state}:{vm.operation}:{vm.operation_seq}:{vm.host_id}:{vm.vcpu}:{vm.memory_mb}:{hash(vm.schedule_message)}:{hash(vm.last_error)}:{vm.hv_state}"
    publish(
        [project_group(vm.project_id), ADMIN_GROUP],
        {"type": "vm.changed", "vm": vm.pk, "project": vm.project_id, "v": v},
    )


def publish_host(host_id: int) -> None:
    publish([ADMIN_GROUP], {"type": "host.changed", "host": host_id})
