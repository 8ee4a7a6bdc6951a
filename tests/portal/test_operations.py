"""The operation framework (``portal.operations``): allowed-from tables, the stale-sequence
check, begin / finish / abandon through a manager's writer, and that it stays a leaf."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from portal import operations
from portal.errors import Conflict, PermissionDenied
from portal.operations import ActionSpec, ActionTable, Refusal

ROOT = Path(__file__).resolve().parents[2]

TABLE = ActionTable(
    {
        "start": ActionSpec(frozenset({"stopped"})),
        "stop": ActionSpec(frozenset({"running", "failed"})),
        "move": ActionSpec(frozenset({"running"}), admin_only=True),
        "recover": ActionSpec(frozenset({"starting", "failed"}), admin_only=True, while_busy=True),
    },
    busy_ok=frozenset({"failed"}),
)


def _obj(state: str, operation: str = "", seq: int = 0, previous: str = "") -> Any:
    return SimpleNamespace(state=state, operation=operation, operation_args={}, operation_seq=seq,
                           previous_state=previous)  # fmt: skip


def _writer(log: list[tuple[str, str, dict[str, Any]]]) -> Any:
    def write(obj: Any, state: str, reason: str = "", **fields: Any) -> None:
        log.append((state, reason, fields))
        obj.state = state
        for k, v in fields.items():
            setattr(obj, k, v)

    return write


def test_refusals_in_order_who_then_state_then_busy() -> None:
    assert TABLE.refusal("move", "stopped", admin=False) is Refusal.ADMIN
    assert TABLE.refusal("start", "running") is Refusal.STATE
    assert TABLE.refusal("stop", "running", busy=True) is Refusal.BUSY
    assert TABLE.refusal("unknown", "running") is Refusal.STATE
    assert TABLE.refusal("stop", "running") is None
    # an operation in flight does not block where the table says so
    assert TABLE.refusal("stop", "failed", busy=True) is None  # busy_ok state
    assert TABLE.refusal("recover", "starting", busy=True) is None  # while_busy action


def test_actions_for_is_what_the_buttons_show() -> None:
    assert TABLE.actions_for("running") == ["stop", "move"]
    assert TABLE.actions_for("running", admin=False) == ["stop"]
    assert TABLE.actions_for("running", busy=True) == []
    assert TABLE.actions_for("failed", busy=True) == ["stop", "recover"]
    assert TABLE.actions_for("starting", busy=True, admin=False) == []


def test_require_raises_403_and_409_with_the_reason() -> None:
    with pytest.raises(PermissionDenied, match="only cloud administrators may move a thing"):
        TABLE.require("move", _obj("running"), noun="a thing", admin=False)
    with pytest.raises(Conflict, match="cannot start a thing in state running") as exc:
        TABLE.require("start", _obj("running"), noun="a thing")
    assert exc.value.status == 409 and exc.value.field == "state"
    with pytest.raises(Conflict, match="while 'stop' is in progress"):
        TABLE.require("stop", _obj("running", "stop"), noun="a thing")
    TABLE.require("stop", _obj("running"), noun="a thing")  # allowed: no exception


def test_begin_finish_and_the_stale_sequence() -> None:
    log: list[tuple[str, str, dict[str, Any]]] = []
    write = _writer(log)
    obj = _obj("running", seq=4)
    seq = operations.begin(obj, "stop", "stopping", write=write, keep_previous={"stopping"}, args={"hard": True})
    assert seq == 5 and (obj.state, obj.previous_state, obj.operation, obj.operation_args) == (
        "stopping",
        "running",
        "stop",
        {"hard": True},
    )
    assert log[-1][1] == "stop"  # the reason defaults to the operation
    assert operations.accept(obj, 5) and not operations.accept(obj, 4) and not operations.accept(None, 5)

    # a second operation begun from a transient state keeps the state to return to
    operations.begin(obj, "recover", "stopping", write=write, keep_previous={"stopping"})
    assert obj.previous_state == "running" and not operations.accept(obj, 5)

    operations.finish(obj, "stopped", write=write, reason="done", state_message="")
    assert (obj.state, obj.operation, obj.operation_args, obj.operation_seq) == ("stopped", "", {}, 6)
    assert not operations.accept(obj, 6)  # idle: a repeated report finds nothing in flight


def test_abandon_makes_the_late_report_stale() -> None:
    obj = _obj("stopping", "stop", seq=7, previous="running")
    operations.abandon(obj, "running", write=_writer([]), reason="recovered")
    assert (obj.state, obj.operation, obj.operation_seq) == ("running", "", 8)
    obj.operation = "start"  # even if a new operation were in flight, seq 7 is not it
    assert not operations.accept(obj, 7)


def test_the_managers_read_their_tables_from_the_framework() -> None:
    from compute.states import TABLE as VM_TABLE
    from compute.states import VMState as S
    from compute.states import allowed_actions
    from images.states import TABLE as IMAGE_TABLE
    from network.states import NIC_TABLE
    from storage.states import TABLE as VOLUME_TABLE

    for table in (VM_TABLE, IMAGE_TABLE, NIC_TABLE, VOLUME_TABLE):
        assert isinstance(table, ActionTable)
    # a VM in a failure state keeps its failed operation and may still be terminated or recovered
    assert allowed_actions(S.BOOT_FAILURE, busy=True, admin=True) == ["terminate", "recover"]
    assert VM_TABLE.actions_for(S.RUNNING, busy=True, admin=True) == []


def test_the_framework_is_a_leaf() -> None:
    """``portal.operations`` imports no project app and no Django at run time (the tables are
    read where Django is not set up); ``portal.models`` (the abstract model) only Django."""
    for name, allowed in (("operations.py", {"portal.errors"}), ("models.py", set())):
        tree = ast.parse((ROOT / "portal" / name).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []  # typing only
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = ("portal." if node.level else "") + (node.module or "")
                imported.add(mod)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        project = {m for m in imported if m.split(".")[0] in _project_packages()}
        assert project <= allowed, (name, project)
        if name == "operations.py":
            assert not {m for m in imported if m.startswith("django")}, imported


def _project_packages() -> set[str]:
    return {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}


@pytest.mark.django_db
def test_operated_gives_vms_and_volumes_the_same_fields() -> None:
    from compute.models import VirtualMachine
    from portal.models import Operated
    from storage.models import Volume

    for model in (VirtualMachine, Volume):
        assert issubclass(model, Operated)
        fields = {f.name: f for f in model._meta.get_fields()}
        assert {"operation", "operation_args", "operation_seq", "state", "previous_state"} <= set(fields)
        assert fields["operation"].max_length == 16  # type: ignore[union-attr]
