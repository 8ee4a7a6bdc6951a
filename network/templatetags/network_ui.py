"""Template tags of the network pages: the VM's NICs for the VM page."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def vm_nics(context: Any, vm: Any) -> dict[str, Any]:
    """NICs of ``vm`` and what the attach form offers (``vm.can_manage`` set by the compute page)."""
    from network.views import vm_nics_context

    return vm_nics_context(context["request"].user, vm)
