"""Volume work on a host, in plain values (no Django): what ``hostagent.run_volume_step`` does
with the ``specs.VolumeOrder`` the control plane puts in its message."""

from __future__ import annotations

from collections.abc import Callable

from compute.drivers.registry import get_driver
from specs import DriverError, VolumeOrder

from . import hostops


def _create(order: VolumeOrder) -> int:
    a = order.args
    if a.get("source"):
        hostops.convert(a["source"], a["source_format"], order.path, order.format, int(a["size"]))
    else:
        hostops.create_empty(order.path, order.format, int(a["size"]))
    return hostops.virtual_size(order.path, order.format)


def _delete(order: VolumeOrder) -> int:
    hostops.remove(order.path)
    return 0


def _attach(order: VolumeOrder) -> int:
    if order.disk is None:
        raise DriverError("the volume's VM disk is gone")
    get_driver(order.driver, order.uri).attach_disk(order.domain, order.disk, live=True)
    return 0


def _detach(order: VolumeOrder) -> int:
    get_driver(order.driver, order.uri).detach_disk(order.domain, _target(order), live=True)
    return 0


def _grow(order: VolumeOrder) -> int:
    size = int(order.args["size"])
    if order.args.get("live") and order.uri:
        get_driver(order.driver, order.uri).resize_disk(order.domain, _target(order), size)
    else:
        hostops.resize(order.path, order.format, size)
    return size


def _snapshot(order: VolumeOrder) -> int:
    hostops.snapshot_create(order.path, order.args["tag"])
    return 0


def _revert(order: VolumeOrder) -> int:
    hostops.snapshot_apply(order.path, order.args["tag"])
    return 0


def _delete_snapshot(order: VolumeOrder) -> int:
    hostops.snapshot_delete(order.path, order.args["tag"])
    return 0


#: The work of each asynchronous volume operation.
#: keyed by ``storage.states.VolumeAction`` values (``tests/hostagent`` checks they match)
STEPS: dict[str, Callable[[VolumeOrder], int]] = {
    "create": _create,
    "delete": _delete,
    "attach": _attach,
    "detach": _detach,
    "grow": _grow,
    "snapshot": _snapshot,
    "revert": _revert,
    "delete-snapshot": _delete_snapshot,
}


def run(order: VolumeOrder) -> tuple[str, int]:
    """``execute``, with a failure as its message: (error, size in bytes)."""
    try:
        return "", execute(order)
    except DriverError as exc:
        return f"{order.operation} failed: {exc}", 0


def execute(order: VolumeOrder) -> int:
    """Carry out one volume operation (no ORM); the volume's size in bytes afterwards (0: unknown)."""
    step = STEPS.get(order.operation)
    if step is None:
        raise DriverError(f"no volume step for {order.operation}")
    return step(order)


def _target(order: VolumeOrder) -> str:
    if order.disk is None:
        raise DriverError("the volume is not attached")
    return order.disk.target
