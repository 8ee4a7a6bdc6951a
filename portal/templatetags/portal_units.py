"""Units shown in every template (a builtin library: no ``{% load %}``).

Sizes are binary multiples and are labelled so (KiB, MiB, GiB, TiB): Django's own
``filesizeformat`` divides by 1024 but writes "MB" and "GB", which is what users read as
decimal units (issue 14)."""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def iec_size(value: object) -> str:
    """``1073741824`` → ``1.0 GiB``; anything that is not a number → ``0 bytes``."""
    try:
        size = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "0 bytes"
    sign = "-" if size < 0 else ""
    size, step = abs(size), 0
    while size >= 1024 and step < len(_UNITS) - 1:
        size /= 1024
        step += 1
    return f"{sign}{int(size)} bytes" if step == 0 else f"{sign}{size:.1f} {_UNITS[step]}"
