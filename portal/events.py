"""Push what changed to browsers, after commit (CONVENTIONS §8).

Services call ``publish_vm`` / ``publish_host``; the message carries only primary keys and
the consumer renders the same partial the page uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

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


async def _send_async(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            await layer.group_send(group, message)
        except (RedisError, OSError) as exc:  # a push is best effort; the page also polls
            log.warning("could not publish %s to %s: %s", message.get("type"), group, exc)


def _send(groups: list[str], message: dict[str, Any]) -> Future[None]:
    """Hand the message to the process's event loop; the caller does not wait for Redis."""
    return asyncio.run_coroutine_threadsafe(_send_async(groups, message), _event_loop())


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
