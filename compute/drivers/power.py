"""Host power drivers: a host's BMC, reached over Redfish (``sushy``) or IPMI (``ipmitool``).

Plain driver code (CONVENTIONS §3): no Django, no models. A driver is built from plain
values (``BMC``: driver name, address, credentials, the Redfish system) and answers with a
``PowerState``; every library error becomes a ``PowerError`` carrying the library's message.
Every call is idempotent: powering on a host that is on, or off one that is off, does nothing
(both protocols define it so; the drivers do not rely on it and ask first).
"""

from __future__ import annotations

import enum
import os
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class PowerAction(enum.StrEnum):
    ON = "on"
    OFF = "off"
    RESET = "reset"
    STATUS = "status"


class PowerError(Exception):
    """The BMC could not be reached, refused the credentials or the request."""


@dataclass(frozen=True)
class BMC:
    """How to reach one host's BMC: ``driver`` is ``redfish``, ``ipmi`` or ``none``.

    ``address``: Redfish: the service's base URL (``https://10.0.0.5`` or ``http://127.0.0.1:8000``);
    IPMI: ``host`` or ``host:port`` (UDP, 623 by default). ``system``: Redfish only, the
    system's identity or path under ``/redfish/v1/Systems/`` (empty: the only system there).
    """

    driver: str
    address: str = ""
    username: str = ""
    password: str = ""
    system: str = ""
    verify_tls: bool = True
    timeout_s: float = 30.0


class PowerDriver(ABC):
    """One BMC's power interface."""

    name: str = ""

    def __init__(self, bmc: BMC) -> None:
        self.bmc = bmc

    @abstractmethod
    def status(self) -> PowerState:
        """The power state the BMC reports."""

    @abstractmethod
    def power_on(self) -> None:
        """Power the host on (nothing when it is on)."""

    @abstractmethod
    def power_off(self) -> None:
        """Power the host off at once, without asking its OS (nothing when it is off)."""

    @abstractmethod
    def reset(self) -> None:
        """A hard reset; a host that is off is powered on."""

    def run(self, action: PowerAction) -> PowerState:
        """Carry out ``action`` and answer the state the BMC reports afterwards (the state
        expected, when the BMC still reports the transition)."""
        if action == PowerAction.ON:
            self.power_on()
            return self._settle(PowerState.ON)
        if action == PowerAction.OFF:
            self.power_off()
            return self._settle(PowerState.OFF)
        if action == PowerAction.RESET:
            self.reset()
            return self._settle(PowerState.ON)
        return self.status()

    def _settle(self, expected: PowerState, tries: int = 10, pause_s: float = 0.5) -> PowerState:
        """Ask until the BMC reports ``expected`` (BMCs apply changes asynchronously)."""
        state = self.status()
        for _ in range(tries):
            if state == expected:
                break
            time.sleep(pause_s)
            state = self.status()
        return state


class NoPowerDriver(PowerDriver):
    """No BMC configured: nothing can be switched, and the state is unknown."""

    name = "none"

    def status(self) -> PowerState:
        return PowerState.UNKNOWN

    def _refuse(self) -> None:
        raise PowerError("no BMC is configured for this host (power driver 'none')")

    def power_on(self) -> None:
        self._refuse()

    def power_off(self) -> None:
        self._refuse()

    def reset(self) -> None:
        self._refuse()


class RedfishPowerDriver(PowerDriver):
    """A Redfish BMC through ``sushy`` (ComputerSystem.Reset: On, ForceOff, ForceRestart)."""

    name = "redfish"

    def _system(self) -> Any:
        import sushy
        from sushy import exceptions

        base = self.bmc.address.rstrip("/")
        try:
            conn = sushy.Sushy(
                base + "/redfish/v1/" if not base.endswith("/redfish/v1") else base + "/",
                username=self.bmc.username or None,
                password=self.bmc.password or None,
                verify=self.bmc.verify_tls,
                read_timeout=int(self.bmc.timeout_s),
                connect_timeout=int(self.bmc.timeout_s),
                server_side_retries=0,
            )
            system = self.bmc.system.strip()
            if not system:
                members = conn.get_system_collection().members_identities
                if len(members) != 1:
                    raise PowerError(f"the Redfish service lists {len(members)} systems; name one (bmc_system)")
                path = members[0]
            elif system.startswith("/"):
                path = system
            else:
                path = f"/redfish/v1/Systems/{system}"
            return conn.get_system(path)
        except exceptions.SushyError as exc:
            raise PowerError(f"redfish {self.bmc.address}: {exc}") from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise PowerError(f"redfish {self.bmc.address}: {exc}") from exc

    def status(self) -> PowerState:
        from sushy import PowerState as RedfishState
        from sushy import exceptions

        system = self._system()
        try:
            system.refresh(force=True)
        except exceptions.SushyError as exc:
            raise PowerError(f"redfish {self.bmc.address}: {exc}") from exc
        if system.power_state in (RedfishState.ON, RedfishState.POWERING_OFF):
            return PowerState.ON
        if system.power_state in (RedfishState.OFF, RedfishState.POWERING_ON):
            return PowerState.OFF
        return PowerState.UNKNOWN

    def _reset(self, kind: str) -> None:
        from sushy import ResetType, exceptions

        system = self._system()
        try:
            system.reset_system(ResetType(kind))
        except (exceptions.SushyError, OSError) as exc:
            raise PowerError(f"redfish {self.bmc.address}: {exc}") from exc

    def power_on(self) -> None:
        if self.status() != PowerState.ON:
            self._reset("On")

    def power_off(self) -> None:
        if self.status() != PowerState.OFF:
            self._reset("ForceOff")

    def reset(self) -> None:
        self._reset("ForceRestart" if self.status() == PowerState.ON else "On")


class IPMIPowerDriver(PowerDriver):
    """An IPMI 2.0 BMC (RMCP+ over UDP, ``lanplus``) through Debian's ``ipmitool``.

    Why not ``pyghmi``: its client always proposes cipher suite 17 (RAKP-HMAC-SHA256) in the
    RMCP+ Open Session Request and never reads the algorithms the BMC answers, falling back to
    suite 3 only when the BMC refuses outright. A BMC that accepts the request but answers suite
    3 (pyghmi's own BMC side, hence virtualbmc, and other SHA-1-only BMCs) breaks the RAKP
    handshake, and no public pyghmi setting chooses the suite (docs/operations.md).
    ``ipmitool`` asks the BMC first (Get Channel Cipher Suites) and uses the best suite offered
    (17 where there is one, else 3). The password travels in the environment (``-E``, read
    from ``IPMI_PASSWORD``), never on a command line other users can read.
    """

    name = "ipmi"
    binary = "ipmitool"

    def _target(self) -> tuple[str, int]:
        address = self.bmc.address.strip()
        if address.startswith("["):  # [::1]:623
            host, _, rest = address[1:].partition("]")
            port = rest.lstrip(":")
        elif address.count(":") == 1:
            host, port = address.split(":")
        else:
            host, port = address, ""
        return host, int(port) if port else 623

    def _ipmitool(self, *command: str) -> str:
        """Run one ``ipmitool -I lanplus`` command; its standard output, or a ``PowerError``."""
        host, port = self._target()
        per_try = 2
        retries = max(1, min(10, int(self.bmc.timeout_s) // per_try))
        argv = [
            self.binary, "-I", "lanplus", "-H", host, "-p", str(port), "-U", self.bmc.username,
            "-E", "-N", str(per_try), "-R", str(retries), "-v", *command,
        ]  # fmt: skip
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "IPMI_PASSWORD": self.bmc.password, "LC_ALL": "C"}
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=per_try * retries * 2 + 15, check=False
            )
        except FileNotFoundError as exc:
            raise PowerError(f"ipmi {self.bmc.address}: {self.binary} is not installed ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise PowerError(f"ipmi {self.bmc.address}: no answer within {exc.timeout:.0f} s") from exc
        except OSError as exc:
            raise PowerError(f"ipmi {self.bmc.address}: {exc}") from exc
        if done.returncode != 0:
            raise PowerError(f"ipmi {self.bmc.address}: {_ipmitool_error(done.stderr) or f'exit {done.returncode}'}")
        return done.stdout

    def status(self) -> PowerState:
        out = self._ipmitool("chassis", "power", "status").lower()
        if "power is on" in out:
            return PowerState.ON
        if "power is off" in out:
            return PowerState.OFF
        return PowerState.UNKNOWN

    def power_on(self) -> None:
        if self.status() != PowerState.ON:
            self._ipmitool("chassis", "power", "on")

    def power_off(self) -> None:
        if self.status() != PowerState.OFF:
            self._ipmitool("chassis", "power", "off")

    def reset(self) -> None:
        self._ipmitool("chassis", "power", "reset" if self.status() == PowerState.ON else "on")


def _ipmitool_error(stderr: str) -> str:
    """ipmitool's diagnosis from its verbose stderr, without its progress chatter."""
    chatter = ("Loading IANA", "Using best available cipher suite", "Running Get ")
    lines = [ln.strip().lstrip("> ").strip() for ln in stderr.splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(chatter)]
    return "; ".join(dict.fromkeys(kept))[:500]


POWER_DRIVERS: dict[str, type[PowerDriver]] = {
    "none": NoPowerDriver,
    "redfish": RedfishPowerDriver,
    "ipmi": IPMIPowerDriver,
}


def power_driver_names() -> list[str]:
    return list(POWER_DRIVERS)


def get_power_driver(bmc: BMC) -> PowerDriver:
    """The driver for ``bmc`` (a fresh one each call: a BMC session is short and cheap)."""
    cls = POWER_DRIVERS.get(bmc.driver)
    if cls is None:
        raise PowerError(f"unknown power driver {bmc.driver!r}; known: {', '.join(POWER_DRIVERS)}")
    return cls(bmc)


def validate_address(driver: str, address: str) -> str:
    """The reason ``address`` does not suit ``driver``, or ''."""
    if driver == "none":
        return ""
    if not address:
        return f"a {driver} BMC needs an address"
    if driver == "redfish":
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "a Redfish address is a URL: https://bmc.example or http://127.0.0.1:8000"
        return ""
    host, port = IPMIPowerDriver(BMC(driver, address))._target() if _port_ok(address) else ("", -1)
    if not host or not 0 < port < 65536 or any(c in host for c in "/ @"):
        return "an IPMI address is host or host:port (port 1-65535)"
    return ""


def _port_ok(address: str) -> bool:
    tail = address.rsplit("]", 1)[-1] if address.startswith("[") else address
    if tail.count(":") != 1:
        return True
    return tail.split(":")[1].isdigit()
