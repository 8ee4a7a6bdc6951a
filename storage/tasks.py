"""Celery tasks of the storage manager: load by primary key, call a pool driver, finish through a
service (CONVENTIONS §7). They run on the default queue, on the machine whose libvirt daemon
holds the pools (``NEPHELE_STORAGE_URI``, ``qemu:///system`` by default)."""

from __future__ import annotations

import logging
import os
import shutil

from celery import shared_task

from portal import periodic
from portal.celery import RETRY_TRANSIENT

from . import services
from .drivers.base import DriverError, PoolInfo, PoolState, PoolType, PoolUnreachable
from .drivers.registry import get_driver
from .models import Datastore
from .services.datastores import libvirt_pool_name, local_uri, pool_spec

log = logging.getLogger(__name__)


def measure(ds: Datastore, uri: str | None = None) -> tuple[PoolInfo | None, str]:
    """Make sure the datastore's pool is defined and running, and measure it.

    Through the libvirt daemon at ``uri``; when that daemon cannot be reached, a ``dir``
    datastore is created and measured on this machine's file system (``shutil.disk_usage``).
    """
    spec = pool_spec(ds)
    drv = get_driver(uri or local_uri())
    try:
        drv.ensure_pool(spec)
        return drv.refresh_pool(spec.name), ""
    except PoolUnreachable as exc:
        if ds.driver != PoolType.DIR:
            return None, str(exc)
        log.info("datastore %s: %s; measuring the directory instead", ds.name, exc)
        return _disk_usage(spec.name, ds.path)
    except DriverError as exc:
        return None, str(exc)
    finally:
        drv.close()


def _disk_usage(name: str, path: str) -> tuple[PoolInfo | None, str]:
    try:
        os.makedirs(path, exist_ok=True)
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    return PoolInfo(name, PoolState.RUNNING, usage.total, usage.used, usage.free), ""


@shared_task(name="storage.monitor_datastore", acks_late=True, **RETRY_TRANSIENT)
def monitor_datastore(ds_id: int) -> str:
    """Define / start / measure one datastore's pool and record the figures (idempotent)."""
    ds = Datastore.objects.filter(pk=ds_id).first()
    if ds is None:
        return "gone"
    info, error = measure(ds)
    services.record_pool_info(ds.pk, info, error)
    return error or "ok"


@shared_task(name="storage.monitor_datastores")
def monitor_datastores() -> dict[str, int]:
    """Periodic (beat): refresh every datastore's total / used / free."""
    errors = 0

    def one(pk: int) -> None:
        nonlocal errors
        errors += monitor_datastore(pk) != "ok"

    sweep = periodic.each(
        "monitor_datastores", list(Datastore.objects.order_by("pk").values_list("pk", flat=True)), one
    )
    return {"ok": sweep.done - errors, "failed": errors + len(sweep.failed)}


@shared_task(name="storage.sweep_stuck_volumes")
def sweep_stuck_volumes() -> dict[str, object]:
    """Periodic (beat): re-drive (or, after a few tries, give up) volume steps that made no progress."""
    from .services import volumes

    return periodic.each("sweep_stuck_volumes", volumes.stuck_volumes(), volumes.sweep_volume).as_result()


@shared_task(name="storage.remove_pool", acks_late=True, **RETRY_TRANSIENT)
def remove_pool(pool_name: str, uri: str) -> str:
    """After a datastore was deleted: undefine its libvirt pool (the data stays). Idempotent."""
    drv = get_driver(uri)
    try:
        drv.undefine_pool(pool_name)
    except DriverError as exc:
        log.warning("could not undefine pool %s on %s: %s", pool_name, uri, exc)
        return str(exc)
    finally:
        drv.close()
    return "ok"


__all__ = [
    "libvirt_pool_name",
    "measure",
    "monitor_datastore",
    "monitor_datastores",
    "remove_pool",
    "sweep_stuck_volumes",
]
