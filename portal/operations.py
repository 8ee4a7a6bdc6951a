"""One operation framework for every managed resource with asynchronous work.

VMs, volumes (with their snapshots), images and whatever comes next (services, remote VMs)
share one shape, taken from Nova's ``task_state`` + OpenNebula's LCM states:

- ``Operated`` (``portal/models.py``): the abstract model of the operation in flight.
  ``operation`` names it ('' when idle), ``operation_args`` carries its plain arguments,
  ``operation_seq`` is bumped by every ``begin`` and travels in the task message, so a stale or repeated report is refused
  (``accept``). ``state`` / ``previous_state`` stay on the concrete model, typed with its own
  state enum; the functions below only read and write them by name.
- ``lock`` → check an ``ActionTable`` → ``begin`` (enter a transient state, remember where to
  return, bump the sequence) → the task runs → ``current`` / ``accept`` → ``finish`` (or
  ``abandon`` when an administrator gives up an operation whose task never reported).
- ``ActionTable``: the allowed-from table of one manager's actions (its ``states.py``), read by
  the service guard (409), the API and the buttons in templates.

Every write goes through the manager's own ``write(obj, state, reason, **fields)`` (compute's
``set_state``, storage's ``_set_state``), so state-change records, audit events, quotas and
pushes stay where they are. This module imports ``portal.errors`` only (not even Django: the
tables are read by code that runs where Django is not set up), the abstract model lives in
``portal.models``; neither imports an app.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import Conflict, NotFound, PermissionDenied

if TYPE_CHECKING:
    from django.db.models import Model

    from .models import Operated


Op = TypeVar("Op", bound="Operated")
M = TypeVar("M", bound="Model")


#: A manager's one state writer, ``write(obj, state, reason, **fields)``: change ``state`` and
#: ``fields``, save, record, publish (compute's ``set_state``, storage's ``_set_state``).
Writer = Callable[..., None]


# --------------------------------------------------------------------------------------------
# lock, begin, finish, accept
# --------------------------------------------------------------------------------------------
def lock(
    model: type[M],
    pk: Any,
    *,
    actor: Any = None,
    action: str = "manage",
    what: str = "",
    field: str | None = None,
    related: Iterable[str] = (),
) -> M:
    """The row of ``model`` with ``pk``, locked, if ``actor`` may ``action`` it (``actor`` None:
    the system acts); NotFound (404) otherwise, exactly like a missing row. ``related`` rows are
    joined, not locked (only the object's own row is)."""
    manager: Any = model._default_manager
    qs = manager.all() if actor is None else manager.restrict(actor, action)
    joined = tuple(related)
    qs = qs.select_related(*joined).select_for_update(of=("self",)) if joined else qs.select_for_update()
    try:
        return qs.get(pk=pk)  # type: ignore[no-any-return]
    except (model.DoesNotExist, ValueError, TypeError):  # type: ignore[attr-defined]
        raise NotFound(f"{what or model._meta.verbose_name} not found", field=field) from None


def begin(
    obj: Op,
    op: str,
    state: str,
    *,
    write: Writer,
    reason: str = "",
    keep_previous: Collection[str] = (),
    args: Mapping[str, Any] | None = None,
    **fields: Any,
) -> int:
    """Start ``op`` on a locked ``obj``: enter ``state``, remember the state to return to, bump
    the sequence. ``keep_previous``: states (transient ones) from which ``previous_state`` is
    kept, not overwritten. The caller queues the task after commit with the returned sequence."""
    previous = obj.previous_state if obj.state in keep_previous else obj.state
    write(
        obj,
        state,
        reason or op,
        previous_state=previous,
        operation=op,
        operation_args=dict(args or {}),
        operation_seq=obj.operation_seq + 1,
        operation_at=datetime.now(UTC),
        operation_tries=0,
        **fields,
    )
    return obj.operation_seq


def finish(obj: Op, state: str, *, write: Writer, reason: str = "", **fields: Any) -> None:
    """End the operation in flight on a locked ``obj`` in ``state``."""
    write(obj, state, reason, **{"operation": "", "operation_args": {}, **fields})


def abandon(obj: Op, state: str, *, write: Writer, reason: str = "", **fields: Any) -> None:
    """Give up the operation in flight (its task never reported): end it in ``state`` and bump
    the sequence, so the task, if it ever reports, is refused as stale."""
    finish(obj, state, write=write, reason=reason, operation_seq=obj.operation_seq + 1, **fields)


def accept(obj: Operated | None, seq: int) -> bool:
    """Does a task's report for operation ``seq`` still concern ``obj``? False when the object
    is gone, idle, or has begun another operation since (a stale or repeated message)."""
    return obj is not None and bool(obj.operation) and obj.operation_seq == seq


def current(model: type[Op], pk: Any, seq: int, *, for_update: bool = True) -> Op | None:
    """The object whose operation ``seq`` a task reports on, locked; None when stale."""
    qs = model._default_manager.all()
    if for_update:
        qs = qs.select_for_update()
    obj = qs.filter(pk=pk).first()
    return obj if accept(obj, seq) else None


def progressed(obj: Operated) -> None:
    """The operation in flight moved on to its next step: restart the sweeper's clock."""
    obj.operation_at = datetime.now(UTC)
    obj.operation_tries = 0


def stuck_verdict(obj: Operated, *, deadline_s: float, max_tries: int) -> str:
    """The sweeper's decision for ``obj``, locked: "" (busy but within its deadline, or idle),
    "redrive" (re-queue the same step and sequence number: its message may have been lost) or
    "fail" (it was re-queued ``max_tries`` times without progress). A redrive restarts the
    clock and counts the try; the caller writes the object and queues the step."""
    if not obj.operation or obj.operation_at is None:
        return ""
    if (datetime.now(UTC) - obj.operation_at).total_seconds() < deadline_s:
        return ""
    if obj.operation_tries >= max_tries:
        return "fail"
    obj.operation_tries += 1
    obj.operation_at = datetime.now(UTC)
    return "redrive"


# --------------------------------------------------------------------------------------------
# allowed-from tables
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionSpec:
    """What an action needs: the states it is allowed from and who may ask for it."""

    allowed_from: frozenset[str]
    admin_only: bool = False
    # Where the action leads when it completes (by source state when it differs).
    target: str | None = None
    danger: bool = False
    # May start while another operation is in flight (recover).
    while_busy: bool = False


class Refusal(enum.Enum):
    """Why an action is refused (each has its own status and message)."""

    ADMIN = "admin"  # 403: only cloud administrators
    STATE = "state"  # 409: not allowed from the current state
    BUSY = "busy"  # 409: another operation is in flight


@dataclass(frozen=True)
class ActionTable:
    """One manager's allowed-from table: ``actions`` in the order the page shows them.

    ``busy_ok``: states in which an operation in flight does not block other actions (a VM in a
    ``*_FAILURE`` state keeps its failed operation until it is recovered or terminated).
    """

    actions: Mapping[str, ActionSpec]
    busy_ok: frozenset[str] = frozenset()

    def __getitem__(self, action: str) -> ActionSpec:
        return self.actions[action]

    def refusal(self, action: str, state: str, *, busy: bool = False, admin: bool = True) -> Refusal | None:
        """Why ``action`` may not start from ``state`` (None: it may). Checked in this order:
        who asks, the state, then the operation in flight."""
        spec = self.actions.get(action)
        if spec is None:
            return Refusal.STATE
        if spec.admin_only and not admin:
            return Refusal.ADMIN
        if state not in spec.allowed_from:
            return Refusal.STATE
        if busy and not spec.while_busy and state not in self.busy_ok:
            return Refusal.BUSY
        return None

    def allowed(self, action: str, state: str, *, busy: bool = False, admin: bool = True) -> bool:
        return self.refusal(action, state, busy=busy, admin=admin) is None

    def actions_for(self, state: str, *, busy: bool = False, admin: bool = True) -> list[str]:
        """The actions that may start from ``state`` (what the page shows as buttons)."""
        return [str(a) for a in self.actions if self.allowed(a, state, busy=busy, admin=admin)]

    def require(self, action: str, obj: Any, *, noun: str, admin: bool = True) -> None:
        """Raise the refusal of ``action`` on ``obj`` (it has ``state`` and maybe ``operation``):
        PermissionDenied (403) or Conflict (409) with the standard messages."""
        operation = getattr(obj, "operation", "")
        refusal = self.refusal(action, obj.state, busy=bool(operation), admin=admin)
        if refusal is Refusal.ADMIN:
            raise PermissionDenied(f"only cloud administrators may {action} {noun}")
        if refusal is Refusal.STATE:
            raise Conflict(f"cannot {action} {noun} in state {obj.state}", field="state")
        if refusal is Refusal.BUSY:
            raise Conflict(
                f"cannot {action} {noun} while '{operation}' is in progress (state {obj.state})", field="state"
            )
