"""The browser consoles' websockets: ``/ws/console/<vm>/serial/`` and ``/ws/console/<vm>/vnc/``.

A socket opens with a one-time token (``?token=``, from ``POST /api/v1/vms/<id>/console/`` or
the console page) that ``compute.services.console.redeem_token`` consumes atomically; the token
names the user, the VM and the kind, and a session cookie of another user refuses it. The
access gate and the VM's state are checked again at connect time and every
``NEPHELE_CONSOLE_RECHECK_S`` after: a user who lost the VM's project, or a VM that left
RUNNING, ends the session (close code ``CLOSE_ENDED``). Every session is audited when it opens
and when it closes.

- **serial**: binary frames both ways are the terminal's bytes (xterm.js); a text frame
  ``{"type": "resize", "cols": C, "rows": R}`` tells the terminal's size (a serial line cannot
  pass it on to the guest: run ``stty rows R cols C`` there; the page shows the command).
- **vnc**: binary frames both ways are RFB (noVNC), bridged to the VNC server's TCP socket on
  the host's loopback or management address (websockify's job, done here).

The streams themselves are driver code (``compute/drivers/console.py``), which knows no Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from .drivers.base import DriverError
from .drivers.console import ConsoleStream, open_serial, vnc_address
from .services import console as service

log = logging.getLogger(__name__)

CLOSE_REFUSED = 4003  # no valid token for this user, VM and console, or no access
CLOSE_ENDED = 4004  # access revoked, or the VM left RUNNING
CLOSE_UNAVAILABLE = 4014  # the console could not be reached on the host
READ_CHUNK = 64 * 1024


class _ConsoleConsumer(AsyncWebsocketConsumer):
    kind = ""
    channel_layer_alias = None  # bytes come from the host, not from a channel layer

    user_id: int | None = None
    opened_at = 0.0
    ended = ""  # why the session ended (the audit's reason)

    async def connect(self) -> None:
        self.vm_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.ip = (self.scope.get("client") or [None])[0]
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        user_id = await database_sync_to_async(service.redeem_token)(token, self.vm_id, self.kind)
        session_user = self.scope.get("user")
        if (
            user_id is not None
            and session_user is not None
            and session_user.is_authenticated
            and session_user.pk != user_id
        ):
            user_id = None  # a token issued to someone else, presented from this user's browser
        target = (
            await database_sync_to_async(service.session_target)(user_id, self.vm_id, self.kind) if user_id else None
        )
        if target is None:
            if user_id is not None:
                await database_sync_to_async(service.record_session)(
                    user_id, self.vm_id, self.kind, "refused", ip=self.ip, reason="no access or VM not running"
                )
            await self.close(code=CLOSE_REFUSED)
            return
        try:
            self.backend = await self.open_backend(target)
        except (DriverError, OSError) as exc:
            log.info("console %s of VM %s unavailable: %s", self.kind, self.vm_id, exc)
            await self.accept(self.subprotocol())
            await self.send(text_data=json.dumps({"type": "error", "message": f"console unavailable: {exc}"}))
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.user_id = user_id
        self.opened_at = time.monotonic()
        await self.accept(self.subprotocol())
        await database_sync_to_async(service.record_session)(user_id, self.vm_id, self.kind, "open", ip=self.ip)
        loop = asyncio.get_running_loop()
        self._pump = loop.create_task(self._host_to_browser())
        self._watch = loop.create_task(self._keep_checking())

    def subprotocol(self) -> str | None:
        """noVNC asks for ``binary`` when told to; answer with it when offered."""
        offered = self.scope.get("subprotocols") or []
        return "binary" if "binary" in offered else None

    async def open_backend(self, target: service.ConsoleTarget) -> Any:
        raise NotImplementedError

    async def backend_read(self) -> bytes:
        raise NotImplementedError

    async def backend_write(self, data: bytes) -> None:
        raise NotImplementedError

    async def backend_close(self) -> None:
        raise NotImplementedError

    async def _host_to_browser(self) -> None:
        while True:
            try:
                data = await self.backend_read()
            except (DriverError, OSError) as exc:
                log.info("console %s of VM %s: read failed: %s", self.kind, self.vm_id, exc)
                data = b""
            if not data:
                await self.end("console closed by the host")
                return
            await self.send(bytes_data=data)

    async def _keep_checking(self) -> None:
        """Re-check the user's access and the VM's state while the session is open."""
        while True:
            await asyncio.sleep(settings.NEPHELE_CONSOLE_RECHECK_S)
            assert self.user_id is not None
            try:
                target = await database_sync_to_async(service.session_target)(self.user_id, self.vm_id, self.kind)
            except DatabaseError as exc:  # fail closed: rights that cannot be re-read end the session
                log.warning("console %s of VM %s: re-check failed: %r", self.kind, self.vm_id, exc)
                target = None
            if target is None:
                await self.end("access revoked or VM no longer running", code=CLOSE_ENDED)
                return

    async def end(self, why: str, code: int = 1000) -> None:
        if self.ended:
            return
        self.ended = why
        await self._finish()  # audited before the client sees the close
        with contextlib.suppress(RuntimeError, OSError):
            await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user_id is None or self.ended:
            return
        if bytes_data:
            try:
                await self.backend_write(bytes_data)
            except (DriverError, OSError) as exc:
                log.info("console %s of VM %s: write failed: %s", self.kind, self.vm_id, exc)
                await self.end("console closed by the host")
        elif text_data:
            await self.control(text_data)

    async def control(self, text: str) -> None:
        """A text frame of the page (serial: its terminal's size)."""

    async def disconnect(self, code: int) -> None:
        if not self.ended:
            self.ended = "closed by the browser"
        await self._finish()

    async def _finish(self) -> None:
        if self.user_id is None:
            return
        user_id, self.user_id = self.user_id, None
        current = asyncio.current_task()
        for name in ("_pump", "_watch"):
            task = getattr(self, name, None)
            if task is not None and task is not current:
                task.cancel()
        with contextlib.suppress(DriverError, OSError):
            await self.backend_close()
        seconds = round(time.monotonic() - self.opened_at, 1)
        await database_sync_to_async(service.record_session)(
            user_id, self.vm_id, self.kind, "close", ip=self.ip, reason=self.ended, seconds=seconds
        )


class SerialConsoleConsumer(_ConsoleConsumer):
    """The VM's serial console (xterm.js on the page)."""

    kind = "serial"
    cols = rows = 0

    async def open_backend(self, target: service.ConsoleTarget) -> ConsoleStream:
        self.stream = await open_serial(target.uri, target.domain)
        return self.stream

    async def backend_read(self) -> bytes:
        return await self.stream.read()

    async def backend_write(self, data: bytes) -> None:
        await self.stream.write(data)

    async def backend_close(self) -> None:
        await self.stream.close()

    async def control(self, text: str) -> None:
        try:
            msg = json.loads(text)
            if isinstance(msg, dict) and msg.get("type") == "resize":
                self.cols, self.rows = max(1, min(int(msg["cols"]), 1000)), max(1, min(int(msg["rows"]), 1000))
        except (ValueError, KeyError, TypeError):
            log.debug("serial console of VM %s: ignoring %r", self.vm_id, text[:80])


class VNCConsoleConsumer(_ConsoleConsumer):
    """The VM's graphical console: RFB between noVNC and the host's VNC server."""

    kind = "vnc"

    async def open_backend(self, target: service.ConsoleTarget) -> Any:
        host, port = await asyncio.to_thread(vnc_address, target.uri, target.domain)
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=10)
        return self.writer

    async def backend_read(self) -> bytes:
        return await self.reader.read(READ_CHUNK)

    async def backend_write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def backend_close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self.writer.wait_closed()
