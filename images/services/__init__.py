"""Image services: the only writers of image state (CONVENTIONS §2).

``core`` (create from a file, attributes, enable/disable, delete, sharing, publication),
``upload`` (chunked browser upload), ``derive`` (empty data blocks, clone, convert),
``ovf`` (OVF / OVA import).
"""

from .core import (
    delete_image,
    max_virtual_bytes,
    register_file,
    request_publish,
    set_enabled,
    set_public,
    share_image,
    unshare_image,
    update_image,
)

__all__ = [
    "delete_image",
    "max_virtual_bytes",
    "register_file",
    "request_publish",
    "set_enabled",
    "set_public",
    "share_image",
    "unshare_image",
    "update_image",
]
