"""Image states and the allowed-from table for every image action (written once: the service
guard, the API's 409 and the buttons on the image page read it)."""

from __future__ import annotations

from .models import ImageState as S

ALLOWED_FROM: dict[str, frozenset[str]] = {
    "upload": frozenset({S.UPLOADING}),
    "delete": frozenset({S.UPLOADING, S.READY, S.USED, S.DISABLED, S.ERROR}),
    "clone": frozenset({S.READY, S.USED}),
    "convert": frozenset({S.READY, S.USED}),
    "enable": frozenset({S.DISABLED}),
    "disable": frozenset({S.READY}),
    "update": frozenset({S.UPLOADING, S.READY, S.USED, S.DISABLED, S.ERROR}),
}
# Usable by a VM (the storage manager's disk builder checks this)
USABLE = frozenset({S.READY, S.USED})


def allowed(action: str, state: str) -> bool:
    """May ``action`` run on an image in ``state``?"""
    return state in ALLOWED_FROM.get(action, frozenset())


def actions_for(state: str) -> list[str]:
    """The actions the image page offers in ``state``."""
    return [a for a in ("enable", "disable", "clone", "convert", "delete") if allowed(a, state)]
