"""The Linux network driver: per host, one bridge per virtual network with a VXLAN device
(the network's VNI, unicast head-end replication to the other hosts through static FDB
entries), VM taps on the bridge, and per port an nftables table with its anti-spoofing,
security-group and NAT rules.

Links, addresses and FDB entries go through netlink (pyroute2); the nftables ruleset text is
generated from the typed plan and loaded with ``nft -f -`` inside the target namespace, one
atomic transaction per port (``table`` + ``delete table`` + ``table { … }``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, NetlinkError
from pyroute2.netns import setns

from .base import (
    LinkPlan,
    NetworkDriver,
    NetworkDriverError,
    PortPlan,
    RulePlan,
    SegmentPlan,
    SegmentState,
    register,
    segment_links,
)

ZERO_MAC = "00:00:00:00:00:00"
TABLE_PREFIX = "nph_"
NFT = "/usr/sbin/nft"
BUSYBOX = "/usr/bin/busybox"
STATE_DIR = Path(os.environ.get("NEPHELE_NET_STATE_DIR", "/run/nephele/net"))


def _table(tap: str) -> str:
    return TABLE_PREFIX + tap.replace("-", "_")


def _set(items: list[str] | tuple[str, ...]) -> str:
    return "{ " + ", ".join(items) + " }"


def _rule_match(rule: RulePlan, remote_key: str) -> str | None:
    """The nft match of an allow rule; None when it can match nothing (a remote group with no members)."""
    fam = "ip" if rule.family == "ipv4" else "ip6"
    parts = []
    anyaddr = {"0.0.0.0/0", "::/0"}
    remotes = [r for r in rule.remotes if ipaddress.ip_network(r).version == (4 if fam == "ip" else 6)]
    if not remotes:
        return None
    if any(r in anyaddr for r in remotes):
        parts.append(f"meta protocol {'ip' if fam == 'ip' else 'ip6'}")
    else:
        parts.append(f"{fam} {remote_key} {_set(remotes)}")
    if rule.protocol in ("tcp", "udp"):
        parts.append(f"meta l4proto {rule.protocol}")
        if rule.port_min is not None:
            ports = str(rule.port_min) if rule.port_min == rule.port_max else f"{rule.port_min}-{rule.port_max}"
            parts.append(f"{rule.protocol} dport {ports}")
    elif rule.protocol == "icmp":
        parts.append("meta l4proto icmp" if fam == "ip" else "meta l4proto ipv6-icmp")
    return " ".join(parts)


def render_port(port: PortPlan) -> str:
    """The nftables tables of one port.

    ``bridge`` family, stateless: anti-spoofing on the frames the VM sends (its MAC, its
    addresses; DHCP discovery from 0.0.0.0). ``inet`` family, stateful (conntrack; bridged
    frames reach it through br_netfilter, where the in/out device is the bridge, so the port is
    told by its addresses, which anti-spoofing makes trustworthy): the security-group rules.
    ``ip`` family: the 1:1 NAT of its public addresses.
    """
    tap, br, t = port.tap, port.segment.bridge, _table(port.tap)
    lines = [f"table bridge {t} {{"]
    lines += [
        "  chain forward {",
        "    type filter hook forward priority -10; policy accept;",
        f'    iifname "{tap}" jump from_vm',
        "  }",
        "  chain input {",
        "    type filter hook input priority -10; policy accept;",
        f'    iifname "{tap}" jump from_vm',
        "  }",
        "  chain from_vm {",
    ]
    if port.anti_spoofing:
        lines.append(f"    ether saddr != {port.mac} drop")
        lines.append(f"    ether type arp arp saddr ether != {port.mac} drop")
        if port.ipv4:
            lines.append(f"    ether type arp arp saddr ip != {port.ipv4} drop")
            if port.dhcp:
                lines.append("    ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept")
            lines.append(f"    ether type ip ip saddr != {port.ipv4} drop")
        else:
            lines.append("    ether type ip drop")
        own6 = ["fe80::/10", "::"] + ([port.ipv6] if port.ipv6 else [])
        lines.append(f"    ether type ip6 ip6 saddr != {_set(own6)} drop")
    lines += ["  }", "}"]
    if port.filtered and (port.ipv4 or port.ipv6):
        lines.append(f"table inet {t} {{")
        lines.append("  chain forward {")
        lines.append("    type filter hook forward priority 0; policy accept;")
        for fam, addr in (("ip", port.ipv4), ("ip6", port.ipv6)):
            if addr:
                lines.append(f'    oifname "{br}" {fam} daddr {addr} jump to_vm')
                lines.append(f'    iifname "{br}" {fam} saddr {addr} jump from_vm')
        lines.append("  }")
        for chain, direction, key in (("from_vm", "egress", "daddr"), ("to_vm", "ingress", "saddr")):
            lines.append(f"  chain {chain} {{")
            lines.append("    ct state established,related accept")
            lines.append("    ct state invalid drop")
            if chain == "to_vm":
                lines.append("    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept")
                if port.dhcp:
                    lines.append("    udp sport 67 udp dport 68 accept")
            else:
                lines.append("    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept")
            for rule in (r for r in port.rules if r.direction == direction):
                m = _rule_match(rule, key)
                if m:
                    lines.append(f"    {m} accept")
            lines.append("    drop")
            lines.append("  }")
        lines.append("}")
    if port.nat:
        lines.append(f"table ip {t} {{")
        lines.append("  chain prerouting {")
        lines.append("    type nat hook prerouting priority -100; policy accept;")
        lines += [f"    ip daddr {n.public_ip} dnat to {n.private_ip}" for n in port.nat]
        lines.append("  }")
        lines.append("  chain postrouting {")
        lines.append("    type nat hook postrouting priority 100; policy accept;")
        lines += [f'    oifname != "{br}" ip saddr {n.private_ip} snat to {n.public_ip}' for n in port.nat]
        lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"


class LinuxNetworkDriver(NetworkDriver):
    """Bridges, VXLAN and nftables in one network namespace (a "host")."""

    name = "linux"

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def _ipr(self) -> Iterator[Any]:
        try:
            # flags=0: a host's namespace must exist; never create one by looking at it
            ipr = IPRoute(netns=self.target.netns, flags=0) if self.target.netns else IPRoute()
        except (OSError, NetlinkError) as exc:
            raise NetworkDriverError(f"cannot open netns {self.target.netns!r}: {exc}") from exc
        try:
            yield ipr
        except NetlinkError as exc:
            raise NetworkDriverError(f"netlink: {exc}") from exc
        finally:
            ipr.close()

    def _nft(self, script: str) -> str:
        return self._run([NFT, "-f", "-"], script)

    @staticmethod
    def _index(ipr: Any, ifname: str) -> int | None:
        found = ipr.link_lookup(ifname=ifname)
        return found[0] if found else None

    # -- segments ----------------------------------------------------------------------------
    def ensure_segment(self, segment: SegmentPlan) -> None:
        """Create or repair bridge + VXLAN + peers (idempotent; removes peers no longer listed),
        or bridge + 802.1Q sub-interface of the uplink for a VLAN segment."""
        links = segment_links(segment, self.target)  # validates the plan before touching the host
        with self._ipr() as ipr:
            br = self._index(ipr, segment.bridge)
            if br is None:
                ipr.link("add", ifname=segment.bridge, kind="bridge")
                br = self._index(ipr, segment.bridge)
            assert br is not None, f"{segment.bridge} vanished"
            ipr.link("set", index=br, mtu=segment.mtu, state="up")
            if segment.isolation == "vlan":
                self._ensure_vlan(ipr, br, links[1])
            else:
                self._ensure_vxlan(ipr, br, segment)
            if segment.gateway4:
                addr, plen = segment.gateway4.split("/")
                present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=br, family=2)}
                if addr not in present:
                    ipr.addr("add", index=br, address=addr, prefixlen=int(plen))
        if segment.gateway4:
            # the gateway answers only its own host's VMs: its frames never leave through the trunk
            self._nft(self._gateway_table(segment))

    def _ensure_vlan(self, ipr: Any, br: int, plan: LinkPlan) -> None:
        """The 802.1Q sub-interface ``plan`` of the uplink, enslaved to the bridge (recreated if its id differs)."""
        up = self._index(ipr, plan.link)
        if up is None:
            raise NetworkDriverError(f"uplink {plan.link} for 802.1Q VLAN {plan.vlan_id} is missing on the host")
        dev = self._index(ipr, plan.ifname)
        if dev is not None and self._vlan_id(ipr, dev) != plan.vlan_id:
            ipr.link("del", index=dev)
            dev = None
        if dev is None:
            try:
                ipr.link("add", ifname=plan.ifname, kind="vlan", link=up, vlan_id=plan.vlan_id)
            except NetlinkError as exc:
                raise NetworkDriverError(
                    f"cannot create the 802.1Q VLAN sub-interface {plan.ifname} (id {plan.vlan_id}) on {plan.link}: "
                    f"{exc} - does this kernel have 802.1Q (the 8021q module)?"
                ) from exc
            dev = self._index(ipr, plan.ifname)
        assert dev is not None, f"{plan.ifname} vanished"
        ipr.link("set", index=up, state="up")
        ipr.link("set", index=dev, master=br, mtu=plan.mtu, state="up")

    @staticmethod
    def _vlan_id(ipr: Any, index: int) -> int:
        link = ipr.get_links(index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        return int(data.get_attr("IFLA_VLAN_ID")) if data is not None else -1

    def _ensure_vxlan(self, ipr: Any, br: int, segment: SegmentPlan) -> None:
        """The VXLAN device of ``segment`` on the bridge, with exactly the planned peers."""
        vx = self._index(ipr, segment.vxlan)
        if vx is not None and self._vni(ipr, vx) != segment.vni:
            ipr.link("del", index=vx)
            vx = None
        if vx is None:
            kw: dict[str, Any] = {"vxlan_id": segment.vni, "vxlan_port": segment.vxlan_port, "vxlan_learning": 1}
            if self.target.underlay_ip:
                kw["vxlan_local"] = self.target.underlay_ip
            ipr.link("add", ifname=segment.vxlan, kind="vxlan", **kw)
            vx = self._index(ipr, segment.vxlan)
        assert vx is not None, f"{segment.vxlan} vanished"
        ipr.link("set", index=vx, master=br, mtu=segment.mtu, state="up")
        have = set(self._peers(ipr, vx))
        for peer in set(segment.peers) - have:
            ipr.fdb("append", ifindex=vx, lladdr=ZERO_MAC, dst=peer)
        for peer in have - set(segment.peers):
            ipr.fdb("del", ifindex=vx, lladdr=ZERO_MAC, dst=peer)

    def _gateway_table(self, segment: SegmentPlan) -> str:
        name = self._gw_name(segment.trunk)
        gw = segment.gateway4.split("/")[0]
        return (
            f"table bridge {name}\ndelete table bridge {name}\n"
            f"table bridge {name} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n"
            f'    oifname "{segment.trunk}" ether type arp arp saddr ip {gw} drop\n'
            f'    oifname "{segment.trunk}" ip saddr {gw} drop\n  }}\n'
            f"  chain forward {{\n    type filter hook forward priority 0; policy accept;\n"
            f'    iifname "{segment.trunk}" ether type arp arp daddr ip {gw} drop\n  }}\n}}\n'
        )

    @staticmethod
    def _gw_name(trunk: str) -> str:
        """The gateway table of a trunk device: gw_<vni> for VXLAN (as before), gw_v<id> for VLAN."""
        return f"{TABLE_PREFIX}gw_{trunk[4:] if trunk.startswith('nphx') else 'v' + trunk[4:]}"

    @staticmethod
    def _vni(ipr: Any, index: int) -> int:
        link = ipr.get_links(index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        return int(data.get_attr("IFLA_VXLAN_ID")) if data is not None else -1

    @staticmethod
    def _peers(ipr: Any, vx: int) -> list[str]:
        out = []
        for entry in ipr.fdb("dump", ifindex=vx):
            if entry.get("ifindex") != vx:
                continue
            dst = entry.get_attr("NDA_DST")
            if dst and entry.get_attr("NDA_LLADDR") == ZERO_MAC:
                out.append(dst)
        return out

    def remove_segment(self, bridge: str) -> None:
        with self._ipr() as ipr:
            br = self._index(ipr, bridge)
            if br is None:
                return
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME", "")
                if link.get_attr("IFLA_MASTER") == br and name.startswith(("nphx", "nphv")):
                    ipr.link("del", index=link["index"])
                    gw = self._gw_name(name)
                    self._nft(f"table bridge {gw}\ndelete table bridge {gw}\n")
            ipr.link("del", index=br)
        self._stop_dhcp(bridge)
        shutil.rmtree(self._dhcp_dir(bridge), ignore_errors=True)

    def segment_state(self, bridge: str) -> SegmentState | None:
        with self._ipr() as ipr:
            br = self._index(ipr, bridge)
            if br is None:
                return None
            vni, peers, ports = 0, tuple[str, ...](), list[str]()
            for link in ipr.get_links():
                if link.get_attr("IFLA_MASTER") != br:
                    continue
                name = link.get_attr("IFLA_IFNAME")
                if name.startswith("nphx"):
                    vni = self._vni(ipr, link["index"])
                    peers = tuple(sorted(self._peers(ipr, link["index"])))
                elif name.startswith("nphv"):
                    vni = self._vlan_id(ipr, link["index"])
                else:
                    ports.append(name)
        return SegmentState(bridge=bridge, vni=vni, peers=peers, ports=tuple(sorted(ports)))

    def segments(self) -> list[str]:
        with self._ipr() as ipr:
            names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
        return sorted(n for n in names if n and n.startswith("nphb"))

    # -- ports -------------------------------------------------------------------------------
    def plug_port(self, port: PortPlan) -> None:
        """Segment, then the port's filter table (atomically replaced), then the device onto the bridge."""
        self.ensure_segment(port.segment)
        self._nft(self._replace(port.tap) + render_port(port))
        with self._ipr() as ipr:
            dev = self._index(ipr, port.tap)
            br = self._index(ipr, port.segment.bridge)
            if dev is not None and br is not None:
                ipr.link("set", index=dev, master=br, mtu=port.segment.mtu, state="up")
            if port.nat and self.target.public_interface:
                pub = self._index(ipr, self.target.public_interface)
                if pub is None:
                    raise NetworkDriverError(f"public interface {self.target.public_interface} is missing")
                present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=pub, family=2)}
                for n in port.nat:  # the host answers ARP for its NAT'ed addresses
                    if n.public_ip not in present:
                        ipr.addr("add", index=pub, address=n.public_ip, prefixlen=32)
        if port.nat:
            self._forwarding()
        if port.dhcp and port.ipv4 and port.segment.gateway4:
            leases = self._dhcp_dir(port.segment.bridge) / "static"
            leases.mkdir(parents=True, exist_ok=True)
            entry = f"{port.mac} {port.ipv4}\n"
            f = leases / port.tap
            if not f.exists() or f.read_text() != entry or not self._dhcp_running(port.segment.bridge):
                f.write_text(entry)
                self._restart_dhcp(port.segment)

    # -- DHCP (busybox udhcpd on the bridge, static leases only) --------------------------------
    def _dhcp_dir(self, bridge: str) -> Path:
        return STATE_DIR / (self.target.netns or "host") / bridge

    def _dhcp_running(self, bridge: str) -> bool:
        pidfile = self._dhcp_dir(bridge) / "udhcpd.pid"
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    def _stop_dhcp(self, bridge: str) -> None:
        pidfile = self._dhcp_dir(bridge) / "udhcpd.pid"
        with suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):  # the next one binds port 67: wait (bounded) until this one is gone
                os.kill(pid, 0)
                time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    def _restart_dhcp(self, segment: SegmentPlan) -> None:
        """Answer the DHCP requests of the ports' MACs with their leased addresses, nothing else."""
        d = self._dhcp_dir(segment.bridge)
        statics = sorted(line.split() for f in (d / "static").glob("*") for line in f.read_text().splitlines() if line)
        self._stop_dhcp(segment.bridge)
        if not statics:
            return
        gw, plen = segment.gateway4.split("/")
        net = ipaddress.IPv4Network(segment.gateway4, strict=False)
        conf = [
            f"interface {segment.bridge}", f"start {statics[0][1]}", f"end {statics[0][1]}",
            f"max_leases {len(statics)}", f"lease_file {d / 'udhcpd.leases'}", f"pidfile {d / 'udhcpd.pid'}",
            f"option subnet {net.netmask}", f"option router {gw}", "option lease 86400",
        ] + [f"static_lease {mac} {ip}" for mac, ip in statics]  # fmt: skip
        (d / "udhcpd.conf").write_text("\n".join(conf) + "\n")
        (d / "udhcpd.leases").touch()
        self._run([BUSYBOX, "udhcpd", str(d / "udhcpd.conf")])

    def _forwarding(self) -> None:
        """Let the host route between its public side and the networks' gateways."""
        self._run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        netns = self.target.netns

        def enter() -> None:  # runs in the child, before exec
            if netns:
                setns(netns, flags=0, fork=False)

        try:
            out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, preexec_fn=enter,
                                 env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetworkDriverError(f"{argv[0]}: {exc}") from exc
        if out.returncode != 0:
            raise NetworkDriverError(f"{argv[0]}: {out.stderr.strip()}")
        return out.stdout

    @staticmethod
    def _replace(tap: str) -> str:
        t = _table(tap)
        return "".join(f"table {fam} {t}\ndelete table {fam} {t}\n" for fam in ("bridge", "inet", "ip"))

    def unplug_port(self, tap: str) -> None:
        self._nft(self._replace(tap))
        for f in (STATE_DIR / (self.target.netns or "host")).glob(f"*/static/{tap}"):
            f.unlink(missing_ok=True)
        with self._ipr() as ipr:
            dev = self._index(ipr, tap)
            if dev is not None:
                ipr.link("set", index=dev, master=0)

    def port_tables(self) -> list[str]:
        """Taps that have a filter table on the host."""
        out = self._run([NFT, "list", "tables"])
        names = [line.split()[-1] for line in out.splitlines() if line.startswith("table bridge ")]
        return sorted(n[len(TABLE_PREFIX) :] for n in names if n.startswith(TABLE_PREFIX) and "gw_" not in n)


register("linux", LinuxNetworkDriver)
