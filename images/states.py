"""Image states and the allowed-from table for every image action (written once: the service
guard, the API's 409 and the buttons on the image page read it; the table's shape is
``portal.operations.ActionTable``, shared with the other managers).

An image's asynchronous work (upload, conversion, clone) happens while the image itself is
``uploading`` / ``converting``: a new image is made for each, so no operation sequence is
needed (the task finds the image in that state, or nothing to do).
"""

from __future__ import annotations

from django.db import models

from portal.operations import ActionSpec, ActionTable

from .models import ImageState as S


class ImageAction(models.TextChoices):
    UPLOAD = "upload", "Upload"
    UPDATE = "update", "Update"
    ENABLE = "enable", "Enable"
    DISABLE = "disable", "Disable"
    CLONE = "clone", "Clone"
    CONVERT = "convert", "Convert"
    DELETE = "delete", "Delete"


A = ImageAction
_ANY = frozenset({S.UPLOADING, S.READY, S.USED, S.DISABLED, S.ERROR})

TABLE = ActionTable(
    {
        A.UPLOAD: ActionSpec(frozenset({S.UPLOADING})),
        A.UPDATE: ActionSpec(_ANY),
        A.ENABLE: ActionSpec(frozenset({S.DISABLED})),
        A.DISABLE: ActionSpec(frozenset({S.READY})),
        A.CLONE: ActionSpec(frozenset({S.READY, S.USED})),
        A.CONVERT: ActionSpec(frozenset({S.READY, S.USED})),
        A.DELETE: ActionSpec(_ANY, danger=True),
    }
)
ALLOWED_FROM: dict[str, frozenset[str]] = {a: spec.allowed_from for a, spec in TABLE.actions.items()}
# Usable by a VM (the storage manager's disk builder checks this)
USABLE = frozenset({S.READY, S.USED})
#: The actions the image page shows as buttons, in this order.
BUTTONS = (A.ENABLE, A.DISABLE, A.CLONE, A.CONVERT, A.DELETE)


def allowed(action: str, state: str) -> bool:
    """May ``action`` run on an image in ``state``?"""
    return TABLE.allowed(action, state)


def actions_for(state: str) -> list[str]:
    """The actions the image page offers in ``state``."""
    return [str(a) for a in BUTTONS if allowed(a, state)]
