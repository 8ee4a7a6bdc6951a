"""Authorization-matrix rows for the consoles (API and pages); see tests/portal/matrix_extensions.py.

{V} is the project's held VM: its console log exists (written here), its consoles do not open
(it is not RUNNING: 409 for those who may open them). Viewers see the VM but may not type
into it (403); other tenants get 404 as for a missing VM. The token rules themselves are in
tests/compute/test_console.py."""

from __future__ import annotations

from typing import Any

ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


API: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("POST", "/api/v1/vms/{V}/console/", {"kind": "serial"}, E(401, 403, 409, 409, 404, 409)),
    ("GET", "/api/v1/vms/{V}/console-log/", None, E(401, 403, 200, 200, 404, 200)),
]
UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/compute/vms/{V}/console/", None, E(302, 403, 200, 200, 404, 200)),
    ("POST", "/compute/vms/{V}/console/token/", {"kind": "serial"}, E(302, 403, 409, 409, 404, 409)),
    ("GET", "/compute/vms/{V}/console/log/", None, E(302, 403, 200, 200, 404, 200)),
]
DENIED_CHANGES = {("POST", "/compute/vms/{V}/console/token/"): set(ROLES)}


def world(ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any) -> None:
    from compute.models import VirtualMachine
    from compute.services.console import console_log_path

    path = console_log_path(VirtualMachine.objects.get(pk=ids["V"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"NEPHELE-MARKER held\n")
