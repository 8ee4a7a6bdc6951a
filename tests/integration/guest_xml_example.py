#!/usr/bin/env python3
"""Standalone proof that a tiny TCG guest boots under libvirt (qemu:///system) on this host.

Not a pytest test and no Django: it builds a domain XML with xml.etree.ElementTree, defines
and starts a transient-named persistent domain (type='qemu', i.e. TCG, never 'kvm'), waits
for ``NEPHELE-MARKER <marker>`` in the serial log file, tries an ACPI shutdown, then
destroys + undefines the domain and prints timings.

Prerequisites::

    scripts/start-libvirtd.sh            # virtlogd + libvirtd, qemu.conf: QEMU runs as root
    scripts/build-test-guest.sh          # .cache/guest/{vmlinuz,initrd.img}

Usage::

    .venv/bin/python tests/integration/guest_xml_example.py [--guest-dir .cache/guest]
        [--marker hello] [--boot-timeout 120] [--shutdown-timeout 30] [--skip-shutdown]
        [--extra-cmdline "quiet"] [--keep-log]

Exit status 0 if the marker was seen (ACPI shutdown is reported, not required).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

URI = "qemu:///system"
REPO = Path(__file__).resolve().parents[2]


def build_domain_xml(
    name: str,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    serial_log: Path,
    memory_mib: int = 256,
    vcpus: int = 1,
) -> str:
    """Domain XML for a diskless, NIC-less, direct-kernel-boot TCG guest with a file serial."""
    dom = ET.Element("domain", type="qemu")  # TCG: nested KVM hangs on this host
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "uuid").text = str(uuid.uuid4())
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(vcpus)

    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(kernel)
    ET.SubElement(os_el, "initrd").text = str(initrd)
    ET.SubElement(os_el, "cmdline").text = cmdline

    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")  # required for virDomainShutdown (ACPI power button)
    ET.SubElement(features, "apic")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_log))
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=str(serial_log))
    ET.SubElement(console, "target", type="serial", port="0")
    # keep the machine minimal: no USB controller, no balloon, no graphics/video, no NIC, no disk
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")

    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(path: Path, needle: str, timeout: float, dom: libvirt.virDomain | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in read_log(path):
            return True
        if dom is not None and not dom.isActive():
            return needle in read_log(path)
        time.sleep(0.2)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest-dir", default=str(REPO / ".cache" / "guest"))
    ap.add_argument("--marker", default="hello")
    ap.add_argument("--boot-timeout", type=float, default=120.0)
    ap.add_argument("--shutdown-timeout", type=float, default=30.0)
    ap.add_argument("--extra-cmdline", default="", help="appended to the kernel command line")
    ap.add_argument("--skip-shutdown", action="store_true", help="skip the ACPI shutdown; just destroy")
    ap.add_argument("--keep-log", action="store_true", help="do not delete the temp dir with serial.log")
    args = ap.parse_args()

    guest_dir = Path(args.guest_dir).resolve()
    kernel, initrd = guest_dir / "vmlinuz", guest_dir / "initrd.img"
    for f in (kernel, initrd):
        if not f.is_file():
            print(f"missing {f}; run scripts/build-test-guest.sh {guest_dir}", file=sys.stderr)
            return 2

    tmp = Path(tempfile.mkdtemp(prefix="nephele-xmltest-"))
    serial_log = tmp / "serial.log"
    name = f"nephele-xmltest-{uuid.uuid4().hex[:8]}"
    cmdline = f"console=ttyS0 nephele.marker={args.marker} {args.extra_cmdline}".strip()
    xml = build_domain_xml(name, kernel, initrd, cmdline, serial_log)
    print("---- domain XML ----")
    print(xml)
    print("--------------------")

    conn = libvirt.open(URI)
    dom = None
    ok = False
    try:
        t0 = time.monotonic()
        dom = conn.defineXML(xml)
        t_def = time.monotonic()
        dom.create()
        t_start = time.monotonic()
        print(f"defined in {t_def - t0:.2f}s, started in {t_start - t_def:.2f}s (domain {name})")

        ok = wait_for(serial_log, f"NEPHELE-MARKER {args.marker}", args.boot_timeout, dom)
        t_marker = time.monotonic()
        if ok:
            print(f"marker seen {t_marker - t_start:.2f}s after start")
        else:
            print(f"marker NOT seen within {args.boot_timeout:.0f}s", file=sys.stderr)

        if ok and dom.isActive() and not args.skip_shutdown:
            t_sd = time.monotonic()
            dom.shutdown()  # ACPI power button (default flags: agent or ACPI; no agent here)
            deadline = t_sd + args.shutdown_timeout
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not dom.isActive():
                print(f"ACPI shutdown: OK, domain off {time.monotonic() - t_sd:.2f}s after shutdown()")
            else:
                print(f"ACPI shutdown: domain still running after {args.shutdown_timeout:.0f}s")
    finally:
        if dom is not None:
            if dom.isActive():
                t_d = time.monotonic()
                dom.destroy()
                print(f"destroyed in {time.monotonic() - t_d:.2f}s")
            dom.undefine()
            print("undefined")
        conn.close()
        print("---- serial.log (NEPHELE lines) ----")
        for line in read_log(serial_log).splitlines():
            if "NEPHELE" in line:
                print(line.strip())
        print(f"---- serial log: {serial_log} ({os.path.getsize(serial_log) if serial_log.exists() else 0} bytes)")
        if args.keep_log:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
