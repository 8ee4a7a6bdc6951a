"""VM and host states, and the allowed-from table for every action.

Modelled on OpenNebula's life cycle (STATE / LCM_STATE collapsed into one field), keeping its
explicit ``*_FAILURE`` states and ``recover``. This table is written once: the service guard,
the API (409 on an illegal action) and the buttons on the VM page all read it.

Stable states need no work in flight. Transient states (PROLOG, BOOT, MIGRATE, SHUTDOWN, SAVE,
EPILOG) mean a driver step is running; the VM's ``operation`` says which action it serves.
"""

from __future__ import annotations

import functools

from django.db import models

from portal.operations import ActionSpec, ActionTable


class VMState(models.TextChoices):
    PENDING = "PENDING", "Pending"
    HOLD = "HOLD", "Hold"
    PROLOG = "PROLOG", "Prolog"
    BOOT = "BOOT", "Boot"
    RUNNING = "RUNNING", "Running"
    MIGRATE = "MIGRATE", "Migrating"
    SHUTDOWN = "SHUTDOWN", "Shutting down"
    SAVE = "SAVE", "Saving"
    EPILOG = "EPILOG", "Epilog"
    SUSPENDED = "SUSPENDED", "Suspended"
    POWEROFF = "POWEROFF", "Powered off"
    STOPPED = "STOPPED", "Stopped"
    UNDEPLOYED = "UNDEPLOYED", "Undeployed"
    UNKNOWN = "UNKNOWN", "Unknown"
    PROLOG_FAILURE = "PROLOG_FAILURE", "Prolog failure"
    BOOT_FAILURE = "BOOT_FAILURE", "Boot failure"
    MIGRATE_FAILURE = "MIGRATE_FAILURE", "Migration failure"
    EPILOG_FAILURE = "EPILOG_FAILURE", "Epilog failure"
    CRASH_FAILURE = "CRASH_FAILURE", "Crashed too often"
    DONE = "DONE", "Done"


S = VMState

TRANSIENT: frozenset[str] = frozenset({S.PROLOG, S.BOOT, S.MIGRATE, S.SHUTDOWN, S.SAVE, S.EPILOG})
FAILURES: frozenset[str] = frozenset(
    {S.PROLOG_FAILURE, S.BOOT_FAILURE, S.MIGRATE_FAILURE, S.EPILOG_FAILURE, S.CRASH_FAILURE}
)
# The step whose failure parks the VM in each failure state (recover --retry re-runs it).
FAILURE_OF_STEP: dict[str, str] = {
    S.PROLOG: S.PROLOG_FAILURE,
    S.BOOT: S.BOOT_FAILURE,
    S.MIGRATE: S.MIGRATE_FAILURE,
    S.EPILOG: S.EPILOG_FAILURE,
}
STEP_OF_FAILURE: dict[str, str] = {v: k for k, v in FAILURE_OF_STEP.items()}
STEP_OF_FAILURE[S.CRASH_FAILURE] = S.BOOT  # retry = boot it again
# States in which the VM holds capacity on its host.
ON_HOST: frozenset[str] = frozenset(
    {S.PROLOG, S.BOOT, S.RUNNING, S.MIGRATE, S.SHUTDOWN, S.SAVE, S.EPILOG, S.SUSPENDED, S.POWEROFF, S.UNKNOWN}
    | FAILURES
)
# States that do not count against the running-VMs quota (everything else does, as in OpenNebula).
NOT_RUNNING: frozenset[str] = frozenset({S.POWEROFF, S.STOPPED, S.UNDEPLOYED, S.DONE})
# States counted as "running" for the dashboard.
ACTIVE: frozenset[str] = frozenset({S.PROLOG, S.BOOT, S.RUNNING, S.MIGRATE, S.SHUTDOWN, S.SAVE, S.UNKNOWN})


class Action(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    HOLD = "hold", "Hold"
    RELEASE = "release", "Release"
    SUSPEND = "suspend", "Suspend"
    RESUME = "resume", "Resume"
    POWEROFF = "poweroff", "Power off"
    REBOOT = "reboot", "Reboot"
    STOP = "stop", "Stop"
    UNDEPLOY = "undeploy", "Undeploy"
    TERMINATE = "terminate", "Terminate"
    MIGRATE = "migrate", "Migrate"
    RESIZE = "resize", "Resize"
    RECOVER = "recover", "Recover"


def _f(*states: str) -> frozenset[str]:
    return frozenset(states)


ACTIONS: dict[str, ActionSpec] = {
    Action.DEPLOY: ActionSpec(_f(S.PENDING, S.HOLD, S.STOPPED, S.UNDEPLOYED), admin_only=True, target=S.RUNNING),
    Action.HOLD: ActionSpec(_f(S.PENDING), target=S.HOLD),
    Action.RELEASE: ActionSpec(_f(S.HOLD), target=S.PENDING),
    Action.SUSPEND: ActionSpec(_f(S.RUNNING), target=S.SUSPENDED),
    Action.RESUME: ActionSpec(_f(S.SUSPENDED, S.POWEROFF, S.UNKNOWN, S.STOPPED, S.UNDEPLOYED), target=S.RUNNING),
    Action.POWEROFF: ActionSpec(_f(S.RUNNING, S.UNKNOWN), target=S.POWEROFF),
    Action.REBOOT: ActionSpec(_f(S.RUNNING), target=S.RUNNING),
    Action.STOP: ActionSpec(_f(S.RUNNING, S.SUSPENDED), target=S.STOPPED),
    Action.UNDEPLOY: ActionSpec(_f(S.RUNNING, S.UNKNOWN, S.POWEROFF), target=S.UNDEPLOYED),
    Action.TERMINATE: ActionSpec(
        _f(S.PENDING, S.HOLD, S.RUNNING, S.UNKNOWN, S.SUSPENDED, S.POWEROFF, S.STOPPED, S.UNDEPLOYED) | FAILURES,
        target=S.DONE,
        danger=True,
    ),
    Action.MIGRATE: ActionSpec(_f(S.RUNNING, S.POWEROFF, S.UNKNOWN), admin_only=True),
    Action.RESIZE: ActionSpec(_f(S.PENDING, S.HOLD, S.POWEROFF, S.STOPPED, S.UNDEPLOYED)),
    Action.RECOVER: ActionSpec(TRANSIENT | FAILURES, admin_only=True, while_busy=True),
}
# A VM in a failure state keeps its failed operation until it is recovered or terminated: the
# operation does not block the actions allowed from there.
TABLE = ActionTable(ACTIONS, busy_ok=FAILURES)

RECOVER_OPTIONS = ("success", "failure", "retry", "delete")


def allowed_actions(state: str, *, busy: bool, admin: bool) -> list[str]:
    """The actions a user may start on a VM in ``state`` (what the page shows as buttons)."""
    return list(_allowed(state, busy, admin))


@functools.lru_cache(maxsize=256)
def _allowed(state: str, busy: bool, admin: bool) -> tuple[str, ...]:
    return tuple(TABLE.actions_for(state, busy=busy, admin=admin))  # the table is fixed at import


class RestartPolicy(models.TextChoices):
    NEVER = "never", "Never (a crashed VM stays powered off)"
    ON_CRASH = "on-crash", "Restart when it crashes"


class HostState(models.TextChoices):
    INIT = "INIT", "Initializing"
    MONITORED = "MONITORED", "Monitored"
    ERROR = "ERROR", "Error"
    DISABLED = "DISABLED", "Disabled"
    OFFLINE = "OFFLINE", "Offline"
    MAINTENANCE = "MAINTENANCE", "Maintenance"


#: host states that keep their administrative meaning whatever a probe says
ADMIN_HOST_STATES: frozenset[str] = frozenset({HostState.DISABLED, HostState.OFFLINE, HostState.MAINTENANCE})


class PlacementPolicy(models.TextChoices):
    PACKING = "packing", "Packing (fewest hosts)"
    STRIPING = "striping", "Striping (spread)"
    LOAD_AWARE = "load_aware", "Load-aware (least busy)"
    FIXED = "fixed", "Fixed (host priority)"
