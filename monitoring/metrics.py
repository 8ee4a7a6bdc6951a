"""A Prometheus endpoint (``/metrics``), authenticated by an API token of a cloud admin or
auditor, so Grafana and Alertmanager can watch the cloud (the successors of Nagios/Ganglia)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from django.http import HttpRequest, HttpResponse

from compute.models import Host, VirtualMachine
from compute.states import VMState
from tenants.credentials import resolve_token
from tenants.querysets import is_cloud_admin, is_cloud_auditor


def _esc(value: str) -> str:
    """Prometheus label escaping: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, help_text: str, kind: str, rows: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in rows:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")
    return out


def exposition() -> str:
    hosts = list(Host.objects.select_related("cluster"))

    def per_host(attr: str) -> list[tuple[dict[str, str], float]]:
        return [
            ({"host": h.name, "cluster": h.cluster.name if h.cluster else ""}, float(getattr(h, attr))) for h in hosts
        ]

    lines: list[str] = []
    lines += _family("nephele_host_up", "1 when the host is MONITORED", "gauge",
                     [({"host": h.name, "state": h.state}, 1.0 if h.state == "MONITORED" else 0.0) for h in hosts])  # fmt: skip
    for attr, help_text in (
        ("total_vcpu", "vCPUs of the host"), ("alloc_vcpu", "vCPUs allocated to VMs"),
        ("total_memory_mb", "memory of the host, MiB"), ("alloc_memory_mb", "memory allocated to VMs, MiB"),
        ("free_memory_mb", "measured free memory, MiB"), ("cpu_load", "measured CPU load, 0..1"),
        ("failed_probes", "failed probes in a row"),
    ):  # fmt: skip
        lines += _family(f"nephele_host_{attr}", help_text, "gauge", per_host(attr))
    by_state = VirtualMachine.objects.exclude(state=VMState.DONE).values("state").annotate(n=Count("pk"))
    lines += _family("nephele_vms", "VMs by state", "gauge", [({"state": r["state"]}, float(r["n"])) for r in by_state])
    pending = VirtualMachine.objects.filter(state=VMState.PENDING)
    lines += _family(
        "nephele_scheduler_pending_vms", "VMs waiting for placement", "gauge", [({}, float(pending.count()))]
    )
    lines += _family(
        "nephele_scheduler_unplaceable_vms", "pending VMs that fit nowhere now", "gauge",
        [({}, float(pending.exclude(schedule_message="").count()))],
    )  # fmt: skip
    from storage.models import Datastore

    stores = list(Datastore.objects.all())
    for attr, help_text in (("total", "capacity of the datastore, bytes"), ("used", "bytes in use"),
                            ("free", "bytes free")):  # fmt: skip
        lines += _family(f"nephele_datastore_{attr}_bytes", help_text, "gauge",
                         [({"datastore": d.name, "kind": d.kind, "driver": d.driver, "state": d.state},
                           float(getattr(d, f"{attr}_bytes"))) for d in stores])  # fmt: skip
    from network.services.ipam import lease_usage

    usage = lease_usage()
    lines += _family("nephele_network_leases_used", "addresses leased (NICs and holds) per network", "gauge",
                     [({"network": n, "project": p}, float(u)) for n, p, u, _t in usage])  # fmt: skip
    lines += _family("nephele_network_leases_total", "addresses a network can lease", "gauge",
                     [({"network": n, "project": p}, float(t)) for n, p, _u, t in usage])  # fmt: skip
    return "\n".join(lines) + "\n"


def metrics(request: HttpRequest) -> HttpResponse:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    token = resolve_token(header.split(" ", 1)[1]) if header.lower().startswith("bearer ") else None
    user = token.user if token is not None else request.user
    if not (is_cloud_admin(user) or is_cloud_auditor(user)):
        return HttpResponse("a cloud admin's or auditor's token is required\n", status=401,
                            headers={"WWW-Authenticate": 'Bearer realm="nephele"'}, content_type="text/plain")  # fmt: skip
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
