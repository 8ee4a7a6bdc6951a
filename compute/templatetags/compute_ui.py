"""Template helpers for compute pages: state colours, allowed actions, bars."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.querysets import is_cloud_admin

from ..states import FAILURES, TRANSIENT, Action, VMState, allowed_actions

register = template.Library()

_QUIET = {VMState.POWEROFF, VMState.STOPPED, VMState.UNDEPLOYED, VMState.SUSPENDED, VMState.HOLD, VMState.DONE}


@register.filter
def state_class(state: str) -> str:
    """ok / busy / warn / bad / (idle) for the state's colour dot."""
    if state in FAILURES or state == "ERROR":
        return "bad"
    if state == VMState.UNKNOWN or state in ("DISABLED", "OFFLINE", "MAINTENANCE"):
        return "warn"
    if state in TRANSIENT or state in (VMState.PENDING, "INIT"):
        return "busy"
    if state in (VMState.RUNNING, "MONITORED"):
        return "ok"
    return "idle" if state in _QUIET else ""


@register.simple_tag(takes_context=True)
def vm_actions(context: Any, vm: Any) -> list[str]:
    """The actions the current user may start on ``vm`` (the buttons), from states.ACTIONS."""
    user = context["request"].user
    if not vm.project_id or not _can_manage(context, vm):
        return []
    return allowed_actions(vm.state, busy=vm.busy, admin=is_cloud_admin(user))


def _can_manage(context: Any, vm: Any) -> bool:
    if "can_manage" in context:  # the live consumer knows it already
        return bool(context["can_manage"])
    cache = context.render_context.setdefault("nephele_manageable", {})
    if vm.pk not in cache:
        from ..models import VirtualMachine

        cache[vm.pk] = VirtualMachine.objects.restrict(context["request"].user, "manage").filter(pk=vm.pk).exists()
    return bool(cache[vm.pk])


@register.filter
def percent(used: int, total: int) -> int:
    return round(100 * used / total) if total else 0


@register.filter
def bar_class(pct: int) -> str:
    return "full" if pct >= 95 else "hot" if pct >= 80 else "used"


@register.filter
def mib(value: int) -> str:
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value} MiB"


HARD_VARIANTS = {"poweroff", "reboot", "terminate", "undeploy"}
# deploy, migrate, resize and recover take input: they have forms of their own on the VM page
SIMPLE = ("hold", "release", "suspend", "resume", "poweroff", "reboot", "stop", "undeploy", "terminate")


@register.filter
def simple_actions(actions: list[str]) -> list[str]:
    """Actions that need no extra input (one button each)."""
    return [a for a in actions if a in SIMPLE]


@register.filter
def action_label(action: str) -> str:
    """The button text of an action, from states.Action's labels."""
    return str(dict(Action.choices).get(action, action.capitalize()))


@register.filter
def has_hard(action: str) -> bool:
    return action in HARD_VARIANTS
