"""Plain values across the broker: frozen dataclasses ↔ JSON-safe dicts.

A step order (with its domain, disks, NICs and their host-side network plans) travels in the
task message to a host agent, and the agent's result travels back, as JSON. ``encode`` tags each
dataclass with its type; ``decode`` rebuilds only types of the modules in ``ALLOWED`` (the
Django-free leaves), so a message can never name an arbitrary class. Fields declared as tuples
come back as tuples; mappings and everything inside them stay plain JSON.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from typing import Any

TAG = "__spec__"
ALLOWED = ("specs", "network.drivers.base")


def encode(value: Any) -> Any:
    """``value`` as JSON-safe data (dataclasses tagged with ``module:Class``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {TAG: f"{type(value).__module__}:{type(value).__qualname__}"}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def _type(tag: str) -> type:
    module, _, name = tag.partition(":")
    if module not in ALLOWED:
        raise ValueError(f"{tag}: not a spec type")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"{tag}: not a spec type")
    return cls


def decode(data: Any) -> Any:
    """The values ``encode`` made, rebuilt."""
    if isinstance(data, dict) and TAG in data:
        cls = _type(data[TAG])
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            raw = data[f.name]
            typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if typ.startswith("tuple") and isinstance(raw, list):
                kwargs[f.name] = tuple(decode(v) for v in raw)
            elif typ.startswith("PowerState"):
                kwargs[f.name] = importlib.import_module("specs").PowerState(raw)
            else:
                kwargs[f.name] = decode(raw)
        return cls(**kwargs)
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        return {k: decode(v) for k, v in data.items()}
    return data
