"""The operation framework on volumes: a stale or repeated task report changes nothing, and
``storage.states.TABLE`` decides both the API's 409 and which buttons the volume page shows.

Volumes are real ``qemu-img`` files; their tasks run eagerly in-process where a test says so,
and not at all where it wants an operation left in flight (no agent consumes the queue)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from compute import services as compute
from portal import operations
from storage.models import Datastore, Volume
from storage.services import volumes as svc
from storage.states import TABLE, VolumeAction
from tenants import quotas
from tests.conftest import client_for

from .volumes_support import MIB, run

A = VolumeAction
GIB = 1024**3

# the button each action has on the volume page, and the API call that starts it
BUTTONS = {A.ATTACH: ">Attach</button>", A.GROW: ">Grow</button>", A.SNAPSHOT: ">Take snapshot</button>",
           A.DELETE: ">Delete</button>"}  # fmt: skip


def _api_call(action: str, vol: Volume, vm_id: int) -> tuple[str, str, dict[str, Any]]:
    base = f"/api/v1/volumes/{vol.pk}/"
    return {
        A.ATTACH: ("post", base + "attach/", {"vm": vm_id}),
        A.GROW: ("post", base + "grow/", {"size_bytes": vol.size_bytes + 16 * MIB}),
        A.SNAPSHOT: ("post", base + "snapshot/", {"name": "s1"}),
        A.DELETE: ("delete", base, {}),
    }[action]


def _volume(eager: Any, actor: Any, project: Any, **kw: Any) -> Volume:
    kw.setdefault("size_bytes", 64 * MIB)
    vol = run(eager, svc.create_volume, actor, project=project, name=kw.pop("name", "data"), **kw)
    vol.refresh_from_db()
    return vol


def _failed_volume(eager: Any, actor: Any, project: Any, tmp_path: Path) -> Volume:
    """A volume whose create failed (its datastore's directory cannot be made): state error."""
    (tmp_path / "file").write_text("a file where the datastore's directory should be")
    ds = Datastore.objects.create(name="broken", kind="system", path=str(tmp_path / "file" / "ds"))
    vol = _volume(eager, actor, project, name="broken", size_bytes=MIB, datastore=ds.pk)
    assert vol.state == "error"
    return vol


def _page(member: Any, project: Any, vol: Volume) -> str:
    c = Client()
    c.force_login(member)
    c.post("/project/switch/", {"project": project.pk})
    return c.get(f"/storage/volumes/{vol.pk}/").content.decode()


# --------------------------------------------------------------------------------------------
# stale sequence numbers
# --------------------------------------------------------------------------------------------
def test_a_stale_or_repeated_report_changes_nothing(eager: Any, member: Any, project: Any) -> None:
    vol = _volume(eager, member, project)
    svc.grow_volume(member, vol.pk, GIB + MIB)  # in flight: its task never runs (no agent)
    vol.refresh_from_db()
    seq = vol.operation_seq
    assert (vol.state, vol.operation) == ("resizing", A.GROW)

    # a report for an earlier operation of the volume is refused, the row is untouched
    assert svc.volume_order(vol.pk, seq - 1) is None
    assert svc.complete_volume_step(vol.pk, seq - 1, error="late") is None
    assert operations.current(Volume, vol.pk, seq - 1) is None
    stale = Volume.objects.get(pk=vol.pk)
    assert (stale.state, stale.operation, stale.operation_seq, stale.state_message) == ("resizing", "grow", seq, "")

    # the current report is accepted once: the volume returns to where it was
    order = svc.volume_order(vol.pk, seq)
    assert order is not None and order.operation is A.GROW
    done = svc.complete_volume_step(vol.pk, seq, error="grow failed: no agent")
    assert done is not None and (done.state, done.operation, done.state_message) == (
        "available",
        "",
        "grow failed: no agent",
    )
    assert next(q.used for q in quotas.usage(project) if q.resource == "volume_gb") == 1  # the grow's GiB given back

    # the same message delivered again finds nothing in flight
    assert svc.complete_volume_step(vol.pk, seq) is None
    assert not operations.accept(Volume.objects.get(pk=vol.pk), seq)

    # a new operation bumps the sequence: the old one's report is stale for it too
    svc.snapshot_volume(member, vol.pk, "s1")
    vol.refresh_from_db()
    assert vol.operation_seq == seq + 1 and vol.operation == A.SNAPSHOT
    assert svc.complete_volume_step(vol.pk, seq, error="late") is None
    vol.refresh_from_db()
    assert (vol.state, vol.operation) == ("snapshotting", "snapshot")


# --------------------------------------------------------------------------------------------
# the allowed-from table drives the 409 and the buttons
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("situation", ["available", "error", "busy"])
def test_the_table_decides_the_409_and_the_buttons(situation: str, eager: Any, member: Any, project: Any,
                                                   template: Any, tmp_path: Path) -> None:  # fmt: skip
    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    failed = situation == "error"
    vol = _failed_volume(eager, member, project, tmp_path) if failed else _volume(eager, member, project)
    if situation == "busy":
        svc.grow_volume(member, vol.pk, GIB + MIB)  # left in flight
        vol.refresh_from_db()
        assert vol.busy
    page = _page(member, project, vol)
    api = client_for(member)

    for action, button in BUTTONS.items():
        allowed = TABLE.allowed(action, vol.state, busy=vol.busy)
        assert (button in page) is allowed, (situation, action, allowed)
        if allowed:
            continue
        method, url, body = _api_call(action, vol, vm.pk)
        before = Volume.objects.values().get(pk=vol.pk)
        resp = getattr(api, method)(url, body, format="json")
        assert resp.status_code == 409, (situation, action, resp.content)
        assert resp.json()["field"] == "state"
        assert Volume.objects.values().get(pk=vol.pk) == before  # a refusal changes nothing

    expected = {
        "available": {A.ATTACH, A.GROW, A.SNAPSHOT, A.DELETE},
        "error": {A.DELETE},
        "busy": set(),
    }[situation]
    assert {a for a in BUTTONS if TABLE.allowed(a, vol.state, busy=vol.busy)} == expected


def test_an_attached_volume_offers_detach_not_delete(eager: Any, member: Any, project: Any, template: Any) -> None:
    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    vol = _volume(eager, member, project)
    run(eager, svc.attach_volume, member, vol.pk, vm.pk)  # cold: the VM is on no host
    vol.refresh_from_db()
    assert vol.state == "in-use"
    page = _page(member, project, vol)
    assert "Detach from held" in page and ">Grow</button>" in page and ">Delete</button>" not in page
    assert TABLE.actions_for(vol.state) == [A.DETACH, A.GROW, A.SNAPSHOT, A.REVERT, A.DELETE_SNAPSHOT]
