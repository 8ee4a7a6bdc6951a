"""OpenAPI post-processing: what every operation may answer besides its success.

drf-spectacular documents the success responses (and the 409s views declare); this hook adds
the errors every API view can give, all in the one error format (``Error``: ``detail``, and
``field`` when one field is at fault), so clients and schemathesis see them documented:

- 400 bad input (a body, a query parameter), 401 no or bad credentials, 403 not allowed,
  404 no such object (or one the caller may not see), 406 an ``Accept`` the API cannot give;
- 409 (writes) the object's state or a name collision refuses it; 415 (bodies) a content type
  the API does not read;
- 429 the caller's rate limit, 503 the server is busy: both with ``Retry-After`` (seconds).

Request bodies: a string without a pattern, enum or format of its own holds no NUL character
(DRF's text fields refuse it), and one that may not be blank (``minLength: 1``) also holds a
character other than white space (``VISIBLE``: what Python's ``str.strip`` or JSON Schema's
``\\s`` counts as white space), as ``portal.api.Text`` enforces.

Paginated lists: ``count`` is absent in keyset (``?cursor=``) mode, so only ``results`` is
required.
"""

from __future__ import annotations

import re
from typing import Any

# Characters that str.strip() removes or that JSON Schema's \s matches.
VISIBLE = re.compile(r"[^\s\x1c-\x1f\x85\ufeff]")
#: text fields refuse NUL (DRF's ProhibitNullCharactersValidator), so the schema says it too
NO_NUL_PATTERN = r"^[^\u0000]*$"
#: a required text: no NUL, and at least one visible character
REQUIRED_TEXT_PATTERN = r"^[^\u0000]*[^\s\u0000\u001c-\u001f\u0085\ufeff][^\u0000]*$"

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "what went wrong, for people"},
        "field": {"type": "string", "description": "the request field at fault, when there is one"},
    },
    "required": ["detail"],
    "additionalProperties": True,
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}}
ALWAYS = {
    "400": "bad input: `detail` says what and `field` names the field",
    "401": "no credentials, or credentials that are not valid (expired, revoked)",
    "403": "the caller may not do this",
    "404": "no such object, or one the caller may not see",
    "406": "the `Accept` header names no format the API answers in",
    "429": "the caller's request rate limit is used up",
    "503": "the server is busy (no database connection was free in time)",
}
WRITES = {"409": "the object's state or a name already in use refuses the change"}
BODIES = {"415": "the body's content type is not one the API reads"}


def _error(description: str, code: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if code in ("429", "503"):
        response["headers"] = RETRY_AFTER
    return response


def declare_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    for name, schema in schemas.items():
        if name.startswith("Paginated") and "results" in schema.get("properties", {}):
            schema["required"] = ["results"]
    for name, schema in schemas.items():
        if name.endswith("Request"):
            for prop in schema.get("properties", {}).values():
                if prop.get("type") == "string" and not prop.keys() & {"pattern", "enum", "format"}:
                    prop["pattern"] = REQUIRED_TEXT_PATTERN if prop.get("minLength") == 1 else NO_NUL_PATTERN
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            codes = dict(ALWAYS)
            if method != "get":
                codes.update(WRITES)
            if "requestBody" in operation:
                codes.update(BODIES)
            responses = operation.setdefault("responses", {})
            for code, description in codes.items():
                responses.setdefault(code, _error(description, code))
    return result
