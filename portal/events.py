"""Push what changed to browsers, after commit (CONVENTIONS §8).

Services call ``publish_vm`` / ``publish_host``; the message carries only primary keys and
the consumer renders the same partial the page uses.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


ADMIN_GROUP = "cloud.admin"


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except (RedisError, OSError) as exc:  # a push is best effort; the page also polls
            log.warning("could not publish %s to %s: %s", message.get("type"), group, exc)


def publish(groups: list[str], message: dict[str, Any]) -> None:
    """Send ``message`` to ``groups`` once the current transaction commits."""
    transaction.on_commit(lambda: _send(groups, message))


def publish_vm(vm_id: int, project_id: int) -> None:
    publish([project_group(project_id), ADMIN_GROUP], {"type": "vm.changed", "vm": vm_id})


def publish_host(host_id: int) -> None:
    publish([ADMIN_GROUP], {"type": "host.changed", "host": host_id})
