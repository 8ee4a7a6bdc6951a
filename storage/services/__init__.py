"""Storage services: the only writers of datastore (and volume) state. One module per resource."""

from .datastores import (
    create_datastore,
    default_image_datastore,
    delete_datastore,
    pick_datastore,
    record_pool_info,
    set_datastore_state,
    update_datastore,
)

__all__ = [
    "create_datastore",
    "default_image_datastore",
    "delete_datastore",
    "pick_datastore",
    "record_pool_info",
    "set_datastore_state",
    "update_datastore",
]

from . import disks, volumes  # noqa: E402,F401  (volumes, VM disks, template disks)
