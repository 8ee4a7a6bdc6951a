"""The storage manager's seams that the image manager joins (registered in ``ImagesConfig.ready``).

Storage keeps VM disks made from images; the image manager owns the images' state. So storage
never imports the image manager's services: it calls these hooks.
"""

from __future__ import annotations

from typing import Any

from portal.hooks import Hook

#: ``(image_id, in_use)`` inside the caller's transaction: a persistent image was taken by a VM
#: (USED) or given back (READY)
image_in_use: Hook[None] = Hook("storage.image_in_use")
#: ``(actor, *, project, name, datastore, path, type)`` → the new READY image adopting ``path``
#: (a VM disk saved as an image); raises the image manager's refusal when the file is unsafe
register_image: Hook[Any] = Hook("storage.register_image")


def set_image_in_use(image_id: int, in_use: bool) -> None:
    image_in_use(image_id, in_use)


def adopt_image_file(actor: Any, **kwargs: Any) -> Any:
    """The image made from the file by the image manager (exactly one is registered)."""
    fns = register_image.functions()
    if len(fns) != 1:
        raise RuntimeError(f"{register_image!r}: expected the image manager's one function")
    return fns[0](actor, **kwargs)
