"""Template tags of the network pages: the VM's NICs for the VM page."""

from __future__ import annotations

from typing import Any

from django import template

from ..states import nic_actions

register = template.Library()


@register.simple_tag(takes_context=True)
def vm_nics(context: Any, vm: Any) -> dict[str, Any]:
    """NICs of ``vm`` and what the attach form offers (``vm.can_manage`` set by the compute page),
    and the NIC actions the VM's state allows (``nic_actions``, from ``network.states``: the
    table the services' 409s read)."""
    from network.views import vm_nics_context

    ctx = vm_nics_context(context["request"].user, vm)
    return {**ctx, "nic_actions": nic_actions(vm.state, busy=vm.busy, hotplug=_can_hotplug(vm, "hotplug_nic"))}


def _can_hotplug(vm: Any, capability: str) -> bool:
    from compute.drivers.registry import capabilities

    host = vm.host if vm.host_id else None
    return host is not None and bool(capabilities(host.driver, host.uri).get(capability))
