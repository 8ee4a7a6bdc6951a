"""A domain's consoles, for the portal's console proxy (``compute/console_consumers.py``).

Plain values and asyncio streams only, no Django:

- **Serial**: libvirt's ``virDomainOpenConsole`` on the domain's pty (``serial type='pty'``, see
  ``build_domain_xml``), over a blocking ``virStream`` read by a thread of its own; bytes read
  are handed to the asyncio loop.
- **Graphics**: the address of the domain's VNC server, read from its live XML, and a TCP
  connection to it (the proxy bridges it to a binary websocket, websockify-style).
- A **simulated host** (libvirt's test driver, which has no consoles) gets a terminal that
  echoes what is typed, so the console path works end to end without a hypervisor.

A console connection is opened by the process serving the websocket, with its own libvirt
connection (Nova's serial and noVNC proxies work the same way), never the agent's.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import logging
import threading
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import libvirt

from .base import DomainNotFound, DriverError, HostUnreachable, Unsupported

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
_EOF = b""


def _driver_error(exc: libvirt.libvirtError) -> DriverError:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(message)
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT):
        return HostUnreachable(message)
    if code == libvirt.VIR_ERR_NO_SUPPORT:
        return Unsupported(message)
    return DriverError(message)


class ConsoleStream(abc.ABC):
    """A byte stream to a guest's console."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next bytes the guest printed; ``b""`` once the console is gone."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Type ``data`` into the console."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the console (idempotent)."""


class EchoConsole(ConsoleStream):
    """A simulated host's console: a banner, then what is typed comes back (CR as CRLF)."""

    BANNER = b"Simulated host: this console echoes what you type.\r\n"

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queue.put_nowait(self.BANNER)
        self._closed = False

    async def read(self) -> bytes:
        if self._closed:
            return _EOF
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        if not self._closed:
            self._queue.put_nowait(data.replace(b"\r", b"\r\n"))

    async def close(self) -> None:
        self._closed = True
        self._queue.put_nowait(_EOF)


class LibvirtSerialConsole(ConsoleStream):
    """The domain's serial console through a blocking libvirt stream on its own connection:
    one thread reads it and hands the bytes to the asyncio loop, writes run in worker threads.

    Blocking, so no libvirt event loop is needed: a web server's forked worker inherits its
    parent's event-loop state but not the thread running it, and libvirt refuses to run one
    loop in two threads."""

    def __init__(self, conn: libvirt.virConnect, stream: libvirt.virStream, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._stream = stream
        self._loop = loop
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False
        self._ended = threading.Event()

    @classmethod
    async def open(cls, uri: str, domain: str, *, force: bool = True) -> LibvirtSerialConsole:
        """Attach to ``domain``'s console on ``uri``. ``force`` takes the console over from
        another session (which then ends), like ``virsh console --force``."""
        loop = asyncio.get_running_loop()
        console = await asyncio.to_thread(cls._open, uri, domain, force, loop)
        threading.Thread(target=console._read_all, name=f"console-{domain}", daemon=True).start()
        return console

    @classmethod
    def _open(cls, uri: str, domain: str, force: bool, loop: asyncio.AbstractEventLoop) -> LibvirtSerialConsole:
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
        try:
            dom = conn.lookupByName(domain)
            stream = conn.newStream(0)
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
            raise _driver_error(exc) from exc
        return cls(conn, stream, loop)

    def _read_all(self) -> None:
        """In the console's own thread: what the guest prints, until the stream ends."""
        while not self._ended.is_set():
            try:
                data = self._stream.recv(READ_CHUNK)
            except libvirt.libvirtError as exc:
                log.info("console stream ended: %s", exc.get_error_message())
                break
            if not isinstance(data, bytes) or not data:
                break
            self._loop.call_soon_threadsafe(self._queue.put_nowait, data)
        self._ended.set()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is reading any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, _EOF)

    async def read(self) -> bytes:
        if self._closed:
            return _EOF
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        if self._closed or self._ended.is_set():
            return
        await asyncio.to_thread(self._send_all, data)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._stream.send(bytes(view))
            except libvirt.libvirtError as exc:
                raise _driver_error(exc) from exc
            if sent <= 0:
                raise DriverError("the console does not take input")
            view = view[sent:]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_EOF)
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        self._ended.set()
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()  # wakes the reading thread
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()


async def open_serial(uri: str, domain: str) -> ConsoleStream:
    """The serial console of ``domain`` on the host at ``uri``."""
    if uri.startswith("test:"):
        return EchoConsole()
    return await LibvirtSerialConsole.open(uri, domain)


def _is_local(uri: str) -> bool:
    """Whether ``uri`` names a hypervisor on this machine (qemu:///system, qemu+unix://…)."""
    parts = urlsplit(uri)
    return parts.hostname in (None, "", "localhost", "127.0.0.1", "::1")


def vnc_address_from_xml(xml: str) -> tuple[str, int]:
    """(address, port) of the VNC server in a running domain's live XML."""
    root = ET.fromstring(xml)
    gfx = root.find("./devices/graphics[@type='vnc']")
    if gfx is None:
        raise Unsupported("the domain has no graphical console")
    port = int(gfx.get("port") or -1)
    if port <= 0:
        raise DriverError("the domain's VNC server has no port (is it running?)")
    listen = gfx.find("listen[@type='address']")
    address = (listen.get("address") if listen is not None else None) or gfx.get("listen") or "127.0.0.1"
    return address, port


def vnc_address(uri: str, domain: str) -> tuple[str, int]:
    """Where to reach ``domain``'s VNC server from this process (blocking: run it in a thread).

    A VNC server on a remote host's loopback cannot be reached from here: the operator sets
    ``NEPHELE_VNC_LISTEN`` to the hosts' management address then (docs/operations.md)."""
    if uri.startswith("test:"):
        raise Unsupported("simulated hosts have no graphical console")
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostUnreachable(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
    try:
        xml = conn.lookupByName(domain).XMLDesc(0)
    except libvirt.libvirtError as exc:
        raise _driver_error(exc) from exc
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    address, port = vnc_address_from_xml(xml)
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if loopback and not _is_local(uri):
        raise Unsupported(
            f"the VNC server of {domain} listens on the loopback of a remote host; set NEPHELE_VNC_LISTEN "
            "to the hosts' management address"
        )
    return address, port
