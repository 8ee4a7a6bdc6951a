"""Template tags of the volume pages and the VM page's Storage section."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def vm_storage(context: Any, vm: Any) -> dict[str, Any]:
    """The VM's disks and attachable volumes, for ``storage/_partials/_vm_disks.html``."""
    from storage.views_volumes import vm_storage_context

    return vm_storage_context(context["request"].user, vm)


@register.filter
def volume_state_css(state: str) -> str:
    from storage.views_volumes import state_css

    return state_css(state)
