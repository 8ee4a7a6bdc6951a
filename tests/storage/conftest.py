"""Fixtures of the storage tests (the volume and VM-disk ones live in ``volumes_support.py``)."""

from .volumes_support import eager, image_ds, system_ds  # noqa: F401
