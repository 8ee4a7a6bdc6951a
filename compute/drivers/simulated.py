"""Simulated hosts: a node XML for libvirt's test driver giving a host its own capacity.

``test:///<path>`` then behaves as a host with that many CPUs and that much memory; the test
driver reports 100 GiB per storage pool, so disk capacity is expressed as a number of pools.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

POOL_GB = 100


def node_xml(vcpu: int, memory_mb: int, disk_gb: int, hostname: str = "sim") -> str:
    node = ET.Element("node")
    cpu = ET.SubElement(node, "cpu")
    for tag, value in (
        ("mhz", 2400),
        ("model", "x86_64"),
        ("active", vcpu),
        ("max", vcpu),
        ("nodes", 1),
        ("sockets", 1),
        ("cores", vcpu),
        ("threads", 1),
    ):
        ET.SubElement(cpu, tag).text = str(value)
    ET.SubElement(node, "memory").text = str(memory_mb * 1024)
    for i in range(max(1, math.ceil(disk_gb / POOL_GB))):
        pool = ET.SubElement(node, "pool", {"type": "dir"})
        ET.SubElement(pool, "name").text = f"{hostname}-pool{i}"
        target = ET.SubElement(pool, "target")
        ET.SubElement(target, "path").text = f"/var/lib/nephele/{hostname}/pool{i}"
    return ET.tostring(node, encoding="unicode")


def write_node(directory: Path, name: str, vcpu: int, memory_mb: int, disk_gb: int) -> str:
    """Write the node XML for a simulated host and return its libvirt URI."""
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"{name}.xml").resolve()
    path.write_text(node_xml(vcpu, memory_mb, disk_gb, hostname=name))
    return f"test://{path}"
