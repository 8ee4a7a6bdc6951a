"""The topology of projects (networks, VMs with their NICs, public IPs) as plain data, and as
an SVG drawing for the browser (rendered server-side, no script)."""

from __future__ import annotations

from typing import Any

from compute.models import VirtualMachine
from compute.states import VMState

from .models import PublicIP, VirtualNetwork, VMNic


def topology(user: Any, projects: Any) -> dict[str, Any]:
    """Networks of ``projects`` (and shared ones their VMs use), their VMs' NICs and public IPs."""
    vms = VirtualMachine.objects.restrict(user, "view").filter(project__in=projects).exclude(state=VMState.DONE)
    nics = list(VMNic.objects.filter(vm__in=vms).select_related("vm", "lease", "network"))
    net_ids = {n.network_id for n in nics} | set(
        VirtualNetwork.objects.restrict(user, "view").filter(project__in=projects).values_list("pk", flat=True)
    )
    nets = list(VirtualNetwork.objects.filter(pk__in=net_ids).order_by("name"))
    pips = {p.nic_id: p.address for p in PublicIP.objects.filter(nic__in=[n.pk for n in nics])}
    vm_list: dict[int, dict[str, Any]] = {}
    for n in nics:
        vm = vm_list.setdefault(n.vm_id, {"id": n.vm_id, "name": n.vm.name, "state": n.vm.state, "nics": []})
        vm["nics"].append({"id": n.pk, "network": n.network_id, "ipv4": n.ipv4, "ipv6": n.ipv6, "mac": n.mac,
                           "public_ip": pips.get(n.pk, "")})  # fmt: skip
    return {
        "networks": [
            {"id": n.pk, "name": n.name, "cidr4": n.cidr4, "cidr6": n.cidr6, "vni": n.vni, "isolation": n.isolation}
            for n in nets
        ],  # fmt: skip
        "vms": sorted(vm_list.values(), key=lambda v: v["name"]),
    }


def svg(data: dict[str, Any]) -> str:
    """Networks as horizontal buses, VMs as boxes below, a line per NIC, public IPs above their VM."""
    from django.utils.html import escape

    nets = data["networks"]
    vms = data["vms"]
    row = {n["id"]: i for i, n in enumerate(nets)}
    width = max(600, 160 * max(len(vms), 1) + 40)
    bus_y0, gap = 40, 50
    vm_y = bus_y0 + gap * max(len(nets), 1) + 40
    height = vm_y + 110
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 {width} {height}" '
           f'width="100%" role="img" aria-label="network topology">']  # fmt: skip
    for n in nets:
        y = bus_y0 + gap * row[n["id"]]
        out.append(f'<line x1="20" y1="{y}" x2="{width - 20}" y2="{y}" stroke="#3b82f6" stroke-width="4"/>')
        out.append(f'<text x="24" y="{y - 8}" font-size="13">{escape(n["name"])} {escape(n["cidr4"])}'
                   f' ({"VLAN" if n.get("isolation") == "vlan" else "VNI"} {n["vni"]})</text>')  # fmt: skip
    for i, vm in enumerate(vms):
        x = 40 + 160 * i
        for nic in vm["nics"]:
            if nic["network"] in row:
                y = bus_y0 + gap * row[nic["network"]]
                out.append(f'<line x1="{x + 60}" y1="{y}" x2="{x + 60}" y2="{vm_y}" stroke="#64748b"/>')
                out.append(f'<circle cx="{x + 60}" cy="{y}" r="4" fill="#1e3a8a"/>')
        out.append(f'<rect x="{x}" y="{vm_y}" width="120" height="50" rx="6" fill="#f1f5f9" stroke="#334155"/>')
        out.append(f'<text x="{x + 8}" y="{vm_y + 20}" font-size="13">{escape(vm["name"])}</text>')
        ips = ", ".join(n["ipv4"] for n in vm["nics"] if n["ipv4"])
        out.append(f'<text x="{x + 8}" y="{vm_y + 38}" font-size="11">{escape(ips)}</text>')
        pub = [n["public_ip"] for n in vm["nics"] if n["public_ip"]]
        if pub:
            out.append(
                f'<text x="{x}" y="{vm_y + 70}" font-size="11" fill="#b45309">public {escape(", ".join(pub))}</text>'
            )
    out.append("</svg>")
    return "".join(out)
