"""Template tags of the volume pages and the VM page's Storage section.

The buttons come from ``storage.states`` (the table the services' 409s read), so a page never
offers an action the service would refuse for the volume's or the VM's state.
"""

from __future__ import annotations

from typing import Any

from django import template

from tenants.querysets import is_cloud_admin

from ..states import TABLE, vm_side_actions

register = template.Library()


@register.simple_tag(takes_context=True)
def vm_storage(context: Any, vm: Any) -> dict[str, Any]:
    """The VM's disks and attachable volumes, for ``storage/_partials/_vm_disks.html``, and the
    volume actions the VM's state allows (``vm_actions``)."""
    from storage.views_volumes import vm_storage_context

    ctx = vm_storage_context(context["request"].user, vm)
    hotplug = _can_hotplug(vm, "hotplug_disk")
    return {**ctx, "vm_actions": vm_side_actions(vm.state, busy=vm.busy, hotplug=hotplug)}


def _can_hotplug(vm: Any, capability: str) -> bool:
    from compute.drivers.registry import capabilities

    host = vm.host if vm.host_id else None
    return host is not None and bool(capabilities(host.driver, host.uri).get(capability))


@register.simple_tag(takes_context=True)
def volume_actions(context: Any, volume: Any) -> list[str]:
    """The actions the volume page offers for ``volume`` in its state (storage.states.TABLE)."""
    request = context.get("request")
    admin = request is not None and is_cloud_admin(request.user)
    return TABLE.actions_for(volume.state, busy=volume.busy, admin=admin)


@register.filter
def volume_state_css(state: str) -> str:
    from storage.views_volumes import state_css

    return state_css(state)
