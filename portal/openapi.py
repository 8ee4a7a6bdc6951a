"""The API's schema generator (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``).

A request body is documented in the media type of the view's first parser only: JSON for every
view but the uploads (``multipart/form-data`` for an OVA import, raw bytes for image chunks).
That is the API's contract. Views also read HTML forms and multipart bodies (the browsable API,
``curl -F``), but a form cannot say ``null`` or tell a number from a string, so documenting them
would promise what the API does not keep.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class Schema(AutoSchema):
    def map_parsers(self) -> list[Any]:
        return super().map_parsers()[:1]
