"""Authorization-matrix rows for volumes, VM disks and template disks (API and pages); see
tests/portal/matrix_extensions.py.

{VOL}: an available volume of the project (a real file), with a ready snapshot {SN};
{VOLA}: a volume attached (cold) to the held VM {V}, whose disk row is {VD};
{TD}: an empty disk of the template {T}.
"""

from __future__ import annotations

from typing import Any

ROLES = ["anon", "viewer", "member", "padmin", "other", "admin"]


def E(anon: int, viewer: int, member: int, padmin: int, other: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anon, viewer, member, padmin, other, admin), strict=True))


READ_ANY = E(401, 200, 200, 200, 200, 200)
READ_PROJECT = E(401, 200, 200, 200, 404, 200)
MANAGE_ACCEPTED = E(401, 404, 202, 202, 404, 202)
PAGE_ANY = E(302, 200, 200, 200, 200, 200)
PAGE_PROJECT = E(302, 200, 200, 200, 404, 200)
MIB = 1024**2

API: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/api/v1/volumes/", None, READ_ANY),
    ("GET", "/api/v1/volumes/{VOL}/", None, READ_PROJECT),
    ("POST", "/api/v1/volumes/", {"project": "{P}", "name": "nv", "size_bytes": MIB}, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOL}/attach/", {"vm": "{V}"}, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOLA}/detach/", None, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOL}/grow/", {"size_bytes": 2 * MIB}, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOL}/snapshot/", {"name": "s2"}, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOL}/revert/", {"snapshot": "{SN}"}, MANAGE_ACCEPTED),
    ("POST", "/api/v1/volumes/{VOL}/delete-snapshot/", {"snapshot": "{SN}"}, MANAGE_ACCEPTED),
    ("DELETE", "/api/v1/volumes/{VOL}/", None, MANAGE_ACCEPTED),
    ("DELETE", "/api/v1/volumes/{VOLA}/", None, E(401, 404, 409, 409, 404, 409)),  # attached
    ("GET", "/api/v1/vm-disks/", None, READ_ANY),
    ("GET", "/api/v1/vm-disks/{VD}/", None, READ_PROJECT),
    # the held VM never ran: its disk cannot be saved yet (409), and nothing changes for anyone
    ("POST", "/api/v1/vm-disks/{VD}/save-as-image/", {"name": "img"}, E(401, 404, 409, 409, 404, 409)),
    ("GET", "/api/v1/template-disks/", None, READ_ANY),
    ("GET", "/api/v1/template-disks/{TD}/", None, READ_PROJECT),
    ("POST", "/api/v1/template-disks/", {"template": "{T}", "size_bytes": MIB}, E(401, 404, 201, 201, 404, 201)),
    ("DELETE", "/api/v1/template-disks/{TD}/", None, E(401, 404, 204, 204, 404, 204)),
]

UI: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/storage/volumes/", None, PAGE_ANY),
    ("GET", "/storage/volumes/{VOL}/", None, PAGE_PROJECT),
    # refusals by the service come back as a message (302), nothing changed
    (
        "POST",
        "/storage/volumes/create/",
        {"project": "{P}", "name": "nv", "size_mb": 1},
        E(302, 302, 302, 302, 302, 302),
    ),
    ("POST", "/storage/volumes/{VOL}/action/", {"action": "grow", "size_mb": 2}, E(302, 302, 302, 302, 404, 302)),
    ("POST", "/storage/vms/{V}/attach/", {"volume": "{VOL}"}, E(302, 302, 302, 302, 404, 302)),
    (
        "POST",
        "/storage/vm-disks/{VD}/action/",
        {"action": "save-as-image", "name": "x"},
        E(302, 302, 302, 302, 404, 302),
    ),
    ("GET", "/storage/templates/{T}/disks/", None, PAGE_PROJECT),
    ("POST", "/storage/templates/{T}/disks/", {"size_mb": 1}, E(302, 302, 302, 302, 404, 302)),
    ("POST", "/storage/template-disks/{TD}/remove/", None, E(302, 302, 302, 302, 404, 302)),
]
DENIED_CHANGES = {
    ("POST", "/storage/volumes/create/"): {"anon", "viewer", "other"},
    ("POST", "/storage/volumes/{VOL}/action/"): {"anon", "viewer", "other"},
    ("POST", "/storage/vms/{V}/attach/"): {"anon", "viewer", "other"},
    # the held VM never ran: refused for everyone
    ("POST", "/storage/vm-disks/{VD}/action/"): set(ROLES),
    ("POST", "/storage/templates/{T}/disks/"): {"anon", "viewer", "other"},
    ("POST", "/storage/template-disks/{TD}/remove/"): {"anon", "viewer", "other"},
}


def world(ids: dict[str, Any], users: dict[str, Any], project: Any, member: Any, admin_user: Any) -> None:
    from compute.models import VMTemplate
    from storage import tasks_volumes
    from storage.models import TemplateDisk, Volume
    from storage.services import volumes as svc

    def ready(vol: Volume) -> Volume:
        vol.refresh_from_db()
        tasks_volumes.run_volume_step(vol.pk, vol.operation_seq)  # the task, in-process
        vol.refresh_from_db()
        assert vol.state in ("available", "in-use"), vol.state_message
        return vol

    vol = ready(svc.create_volume(member, project=project, name="vol", size_bytes=MIB))
    snap = svc.snapshot_volume(member, vol.pk, "s1")
    ready(vol)
    attached = ready(svc.create_volume(member, project=project, name="vola", size_bytes=MIB))
    svc.attach_volume(member, attached.pk, ids["V"])
    template = VMTemplate.objects.get(pk=ids["T"])
    ids.update(
        VOL=vol.pk, SN=snap.pk, VOLA=attached.pk, VD=attached.vm_disks.get().pk,
        TD=TemplateDisk.objects.create(template=template, size_bytes=MIB).pk,
    )  # fmt: skip
