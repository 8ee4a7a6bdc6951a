"""Datastores: create, change, enable / disable, delete, capacity records, and placement helpers.

The only writer of ``Datastore`` rows (CONVENTIONS §2). Work on the storage daemon (define and
start the libvirt pool, measure it) runs in ``storage.tasks`` after commit and finishes here
through ``record_pool_info``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from compute.models import Cluster, host_name_validator
from monitoring.audit import record_action
from monitoring.events import emit
from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants.querysets import Actor, is_cloud_admin

from ..drivers.base import InvalidPoolSpec, PoolInfo, PoolSpec, PoolType
from ..drivers.libvirt import parse_monitors
from ..models import CloneMode, Datastore, DatastoreDriver, DatastoreKind, DatastoreState

GIB = 1024**3
# Datastore series in the monitoring store (Kind.DATASTORE). The monitoring ``Metric`` enum does
# not name them yet (declaring them there needs a monitoring migration); the codes are reserved.
METRIC_TOTAL_BYTES, METRIC_USED_BYTES, METRIC_FREE_BYTES = 20, 21, 22

# source keys per driver: (required, optional)
SOURCE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    DatastoreDriver.DIR: ((), ()),
    DatastoreDriver.LOGICAL: (("vg",), ("devices",)),
    DatastoreDriver.NETFS: (("host", "dir"), ("format", "protocol")),
    DatastoreDriver.RBD: (("pool", "monitors"), ("auth_username", "secret_uuid")),
}
SOURCE_HELP = {
    "vg": "the LVM volume group",
    "devices": "physical volumes to build the group from",
    "host": "the NFS server",
    "dir": "the exported directory",
    "format": "nfs, glusterfs, cifs or auto",
    "protocol": "the NFS protocol version",
    "pool": "the Ceph pool",
    "monitors": "Ceph monitors, host or host:port",
    "auth_username": "the cephx user",
    "secret_uuid": "the libvirt secret holding the cephx key",
}
NETFS_FORMATS = ("nfs", "glusterfs", "cifs", "auto")
# which state each administrative action may start from
ACTIONS: dict[str, tuple[str, ...]] = {
    "enable": (DatastoreState.DISABLED, DatastoreState.ERROR),
    "disable": (DatastoreState.READY, DatastoreState.ERROR),
    "refresh": (DatastoreState.READY, DatastoreState.DISABLED, DatastoreState.ERROR),
}


def local_uri() -> str:
    """The libvirt daemon that holds this machine's pools (``NEPHELE_STORAGE_URI``)."""
    return str(getattr(settings, "NEPHELE_STORAGE_URI", "") or os.environ.get("NEPHELE_STORAGE_URI", "qemu:///system"))


def libvirt_pool_name(ds: Datastore) -> str:
    """The libvirt pool's name: ``<NEPHELE_DOMAIN_PREFIX>-ds-<pk>`` (``Datastore.pool_name`` in
    production; test runs name theirs apart, as they do their domains)."""
    return f"{settings.NEPHELE_DOMAIN_PREFIX}-ds-{ds.pk}"


def pool_spec(ds: Datastore) -> PoolSpec:
    """The plain pool description the drivers take."""
    return PoolSpec(name=libvirt_pool_name(ds), type=PoolType(ds.driver), target_path=ds.path, source=dict(ds.source))


def _require_admin(actor: Actor) -> None:
    if actor is not None and not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators manage datastores")


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def default_path(name: str, driver: str, source: Mapping[str, Any]) -> str:
    """Where a datastore lives when no path is given."""
    if driver == DatastoreDriver.LOGICAL and source.get("vg"):
        return f"/dev/{source['vg']}"
    if driver == DatastoreDriver.RBD:
        return ""
    return str(os.path.join(settings.NEPHELE_STATE_DIR, "datastores", name))


def _clean_path(path: str, driver: str) -> str:
    path = (path or "").strip()
    if driver == DatastoreDriver.RBD and not path:
        return ""
    if "\x00" in path or len(path) > 1024:
        raise InvalidInput("path must be at most 1024 characters, without NUL", field="path")
    if not path.startswith("/"):
        raise InvalidInput(f"path must be absolute (start with /), not {path!r}", field="path")
    if os.path.normpath(path) != path or path == "/":
        raise InvalidInput(f"path must be a normalised directory other than / (no .., //, trailing /): {path!r}",
                           field="path")  # fmt: skip
    return path


def _text(source: Mapping[str, Any], key: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"source.{key}: {SOURCE_HELP[key]} must be a non-empty string", field=f"source.{key}")
    return value.strip()


def _list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def clean_source(driver: str, source: Any) -> dict[str, Any]:
    """The driver's settings, checked and normalised; ``InvalidInput`` names the key at fault."""
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise InvalidInput("source must be an object of driver settings", field="source")
    required, optional = SOURCE_KEYS[driver]
    unknown = sorted(k for k in source if k not in required + optional)
    if unknown:
        allowed = ", ".join(required + optional) or "none"
        raise InvalidInput(f"source: unknown key(s) {', '.join(unknown)} for a {driver} datastore (allowed: {allowed})",
                           field="source")  # fmt: skip
    missing = [k for k in required if source.get(k) in (None, "", [])]
    if missing:
        need = ", ".join(f"source.{k} ({SOURCE_HELP[k]})" for k in missing)
        raise InvalidInput(f"a {driver} datastore needs {need}", field=f"source.{missing[0]}")
    out: dict[str, Any] = {}
    if driver == DatastoreDriver.LOGICAL:
        out["vg"] = _text(source, "vg")
        if not all(c.isalnum() or c in "+_.-" for c in out["vg"]) or out["vg"].startswith("-"):
            raise InvalidInput("source.vg: a volume group name is letters, digits and + _ . -", field="source.vg")
        devices = _list(source.get("devices") or [])
        if any(not d.startswith("/dev/") for d in devices):
            raise InvalidInput("source.devices: each device must be a path under /dev/", field="source.devices")
        if devices:
            out["devices"] = devices
    elif driver == DatastoreDriver.NETFS:
        out["host"] = _text(source, "host")
        out["dir"] = _text(source, "dir")
        if not out["dir"].startswith("/"):
            raise InvalidInput("source.dir: the export must be an absolute path", field="source.dir")
        fmt = str(source.get("format") or "nfs")
        if fmt not in NETFS_FORMATS:
            raise InvalidInput(f"source.format must be one of {', '.join(NETFS_FORMATS)}", field="source.format")
        out["format"] = fmt
        if source.get("protocol"):
            out["protocol"] = str(source["protocol"]).strip()
    elif driver == DatastoreDriver.RBD:
        out["pool"] = _text(source, "pool")
        try:
            monitors = parse_monitors(_list(source.get("monitors")))
        except InvalidPoolSpec as exc:
            raise InvalidInput(f"source.monitors: {exc}", field="source.monitors") from None
        out["monitors"] = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in monitors]
        if source.get("auth_username"):
            out["auth_username"] = _text(source, "auth_username")
            secret = str(source.get("secret_uuid") or "").strip()
            try:
                out["secret_uuid"] = str(uuid.UUID(secret))
            except ValueError:
                raise InvalidInput("source.secret_uuid: cephx auth needs the UUID of a libvirt secret",
                                   field="source.secret_uuid") from None  # fmt: skip
        elif source.get("secret_uuid"):
            raise InvalidInput("source.auth_username: a secret needs its cephx user name", field="source.auth_username")
    return out


@dataclass(frozen=True)
class _Clean:
    name: str
    kind: str
    driver: str
    path: str
    source: dict[str, Any]
    clone_mode: str


def _clean(name: str, kind: str, driver: str, path: str | None, source: Any, clone_mode: str,
           exclude: int | None = None) -> _Clean:  # fmt: skip
    try:
        host_name_validator(name)
    except ValidationError:
        raise InvalidInput("name: 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit", field="name") from None
    others = Datastore.objects.exclude(pk=exclude) if exclude is not None else Datastore.objects.all()
    if others.filter(name=name).exists():
        raise Conflict(f"a datastore named {name!r} exists already", field="name")
    if kind not in DatastoreKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(DatastoreKind.values)}", field="kind")
    if driver not in DatastoreDriver.values:
        raise InvalidInput(f"driver must be one of {', '.join(DatastoreDriver.values)}", field="driver")
    if clone_mode not in CloneMode.values:
        raise InvalidInput(f"clone_mode must be one of {', '.join(CloneMode.values)}", field="clone_mode")
    if clone_mode == CloneMode.COW and driver in (DatastoreDriver.LOGICAL, DatastoreDriver.RBD):
        raise InvalidInput(f"clone_mode cow needs files (a dir or netfs datastore); a {driver} datastore copies",
                           field="clone_mode")  # fmt: skip
    clean = clean_source(driver, source)
    path = _clean_path(path if path else default_path(name, driver, clean), driver)
    if path and driver in (DatastoreDriver.DIR, DatastoreDriver.NETFS):
        other = others.filter(path=path).first()
        if other is not None:
            raise Conflict(f"path {path} is already datastore {other.name}'s", field="path")
    return _Clean(name, kind, driver, path, clean, clone_mode)


def _clusters(ids: Iterable[Any] | None) -> list[Cluster]:
    if ids is None:
        return []
    wanted = {c.pk if isinstance(c, Cluster) else c for c in ids}
    try:
        found = list(Cluster.objects.filter(pk__in=wanted))
    except (TypeError, ValueError):
        raise InvalidInput("clusters must be cluster ids", field="clusters") from None
    if len(found) != len(wanted):
        raise InvalidInput("clusters: unknown cluster id(s)", field="clusters")
    return found


# --------------------------------------------------------------------------------------------
# administrative operations (cloud administrators)
# --------------------------------------------------------------------------------------------
def _queue_monitor(ds: Datastore) -> None:
    from .. import tasks

    pk = ds.pk
    transaction.on_commit(lambda: tasks.monitor_datastore.delay(pk))


def _prepare_directory(ds: Datastore) -> None:
    """A ``dir`` datastore on this machine: make its directory and take first figures from the
    file system at once (the pool, defined after commit, refines them), so the scheduler does
    not wait for the first measurement. A failure is recorded in ``state`` / ``state_message``."""
    if ds.driver != DatastoreDriver.DIR:
        return
    try:
        os.makedirs(ds.path, exist_ok=True)
        usage = shutil.disk_usage(ds.path)
    except OSError as exc:
        ds.state, ds.state_message = DatastoreState.ERROR, f"{ds.path}: {exc.strerror or exc}"
        return
    ds.total_bytes, ds.used_bytes, ds.free_bytes = usage.total, usage.total - usage.free, usage.free
    ds.monitored_at = timezone.now()


def _wake_scheduler(ds: Datastore) -> None:
    """A system datastore became usable: pending VMs may fit now (compute.schedule_pending)."""
    if ds.kind != DatastoreKind.SYSTEM or ds.state != DatastoreState.READY or ds.free_bytes <= 0:
        return
    from compute.hooks import wake_scheduler

    wake_scheduler()


@transaction.atomic
def create_datastore(
    actor: Actor,
    *,
    name: str,
    kind: str = DatastoreKind.IMAGE,
    driver: str = DatastoreDriver.DIR,
    path: str | None = None,
    source: Mapping[str, Any] | None = None,
    clone_mode: str = CloneMode.COW,
    clusters: Iterable[Any] | None = None,
    ip: str | None = None,
) -> Datastore:
    """Add a datastore (READY); after commit its pool is defined, built, started and measured
    (``storage.monitor_datastore``), which turns it ERROR with the reason if that fails."""
    _require_admin(actor)
    c = _clean(name, kind, driver, path, source, clone_mode)
    reach = _clusters(clusters)
    ds = Datastore(name=c.name, kind=c.kind, driver=c.driver, path=c.path, source=c.source, clone_mode=c.clone_mode,
                   state=DatastoreState.READY)  # fmt: skip
    _prepare_directory(ds)
    try:
        with transaction.atomic():  # a concurrent create of the same name loses here, not with a 500
            ds.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"a datastore named {c.name!r} exists already", field="name") from None
    ds.clusters.set(reach)
    record_action(actor, ds, "create", ip=ip, kind=c.kind, driver=c.driver, path=c.path)
    _queue_monitor(ds)
    _wake_scheduler(ds)
    return ds


def _lock(ds_id: Any) -> Datastore:
    try:
        ds = Datastore.objects.select_for_update().filter(pk=ds_id).first()
    except (TypeError, ValueError):
        ds = None
    if ds is None:
        raise NotFound("datastore not found")
    return ds


def _referring_fields() -> list[Any]:
    """Every foreign key to Datastore in the project (images, volumes, VM disks…), hidden
    reverse relations (``related_name="+"``) included."""
    from django.apps import apps

    return [
        f
        for model in apps.get_models()
        for f in model._meta.get_fields()
        if getattr(f, "many_to_one", False) and f.concrete and f.related_model is Datastore
    ]


def contents(ds: Datastore) -> dict[str, int]:
    """What lives in the datastore, per table that refers to it: {"images": 2, "volumes": 1}."""
    out: dict[str, int] = {}
    for f in _referring_fields():
        n = f.model._default_manager.filter(**{f.name: ds}).count()
        if n:
            key = str(f.model._meta.verbose_name_plural).lower()
            out[key] = out.get(key, 0) + n
    return out


def _in_use(ds: Datastore) -> str:
    used = contents(ds)
    return ", ".join(f"{n} {what}" for what, n in sorted(used.items()))


@transaction.atomic
def update_datastore(actor: Actor, ds_id: Any, *, ip: str | None = None, **changes: Any) -> Datastore:
    """Change name, clone_mode or clusters at any time; kind, driver, path and source only while
    the datastore is empty (files would be left behind). The pool is redefined after commit."""
    _require_admin(actor)
    allowed = {"name", "kind", "driver", "path", "source", "clone_mode", "clusters"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)}", field=unknown[0])
    ds = _lock(ds_id)
    location = {k for k in ("kind", "driver", "path", "source") if k in changes and changes[k] != getattr(ds, k)}
    if location:
        busy = _in_use(ds)
        if busy:
            raise Conflict(f"datastore {ds.name} holds {busy}; its {', '.join(sorted(location))} cannot change",
                           field=sorted(location)[0])  # fmt: skip
    driver = changes.get("driver", ds.driver)
    source = changes.get("source", ds.source if "driver" not in changes else {})
    path = changes.get("path", ds.path if "driver" not in changes and "source" not in changes else None)
    c = _clean(changes.get("name", ds.name), changes.get("kind", ds.kind), driver, path, source,
               changes.get("clone_mode", ds.clone_mode), exclude=ds.pk)  # fmt: skip
    before = {f: getattr(ds, f) for f in ("name", "kind", "driver", "path", "source", "clone_mode")}
    for f, v in c.__dict__.items():
        setattr(ds, f, v)
    if ds.driver != before["driver"] or ds.path != before["path"]:
        _prepare_directory(ds)
    try:
        with transaction.atomic():
            ds.save()
    except IntegrityError:
        raise Conflict(f"a datastore named {c.name!r} exists already", field="name") from None
    if "clusters" in changes:
        ds.clusters.set(_clusters(changes["clusters"]))
    changed = sorted(f for f, v in before.items() if getattr(ds, f) != v) + (
        ["clusters"] if "clusters" in changes else []
    )
    record_action(actor, ds, "update", ip=ip, changed=",".join(changed))
    if {"driver", "path", "source"} & set(changed):
        _queue_monitor(ds)
    return ds


@transaction.atomic
def set_datastore_state(actor: Actor, ds_id: Any, action: str, *, ip: str | None = None) -> Datastore:
    """enable / disable / refresh. A disabled datastore takes no new images, volumes or VM disks
    (``pick_datastore`` and the scheduler skip it); refresh re-measures it (after commit)."""
    _require_admin(actor)
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}", field="action")
    ds = _lock(ds_id)
    if ds.state not in ACTIONS[action]:
        raise Conflict(f"datastore {ds.name} is {ds.state}; {action} is not possible now", field="action")
    if action != "refresh":
        before = ds.state
        ds.state = DatastoreState.READY if action == "enable" else DatastoreState.DISABLED
        ds.state_message = f"{action}d by {getattr(actor, 'username', 'system')}"
        ds.save(update_fields=["state", "state_message"])
        emit(f"datastore.state.{ds.state}", ds, actor=actor, from_state=before)
    record_action(actor, ds, action, ip=ip)
    if action != "disable":
        _queue_monitor(ds)
    if action == "enable":
        _wake_scheduler(ds)
    return ds


@transaction.atomic
def delete_datastore(actor: Actor, ds_id: Any, *, ip: str | None = None) -> None:
    """Remove an empty datastore; refused (409, naming what is left) while it holds anything.
    Its pool is undefined after commit; the files on disk stay."""
    from .. import tasks

    _require_admin(actor)
    ds = _lock(ds_id)
    busy = _in_use(ds)
    if busy:
        raise Conflict(f"datastore {ds.name} still holds {busy}; delete or move them first")
    record_action(actor, ds, "delete", ip=ip)
    name, uri = libvirt_pool_name(ds), local_uri()
    try:
        with transaction.atomic():
            ds.delete()
    except ProtectedError as exc:  # a row that refers to it appeared since the check
        raise Conflict(f"datastore {ds.name} is still referred to by {len(exc.protected_objects)} row(s)") from None
    transaction.on_commit(lambda: tasks.remove_pool.delay(name, uri))


# --------------------------------------------------------------------------------------------
# capacity (written by storage.tasks)
# --------------------------------------------------------------------------------------------
@transaction.atomic
def record_pool_info(ds_id: int, info: PoolInfo | None, error: str = "") -> Datastore | None:
    """A measurement's result: figures, or the reason the pool is unusable (READY → ERROR; a
    good measurement brings an ERROR datastore back to READY; DISABLED stays DISABLED)."""
    from monitoring.store import ingest

    ds = Datastore.objects.select_for_update().filter(pk=ds_id).first()
    if ds is None:
        return None
    before, previous_free = ds.state, ds.free_bytes
    fields = ["state", "state_message"]
    if info is None:
        if ds.state == DatastoreState.READY:
            ds.state = DatastoreState.ERROR
        ds.state_message = error[:2000] or "the pool could not be measured"
    else:
        if ds.state == DatastoreState.ERROR:
            ds.state, ds.state_message = DatastoreState.READY, ""
        elif ds.state == DatastoreState.READY:
            ds.state_message = ""
        ds.total_bytes = max(0, info.capacity_bytes)
        ds.free_bytes = max(0, min(info.available_bytes, info.capacity_bytes))
        ds.used_bytes = max(0, info.capacity_bytes - ds.free_bytes)
        ds.monitored_at = timezone.now()
        fields += ["total_bytes", "used_bytes", "free_bytes", "monitored_at"]
        from monitoring.models import Kind

        t = ds.monitored_at
        ingest([(t, Kind.DATASTORE, ds.pk, METRIC_TOTAL_BYTES, float(ds.total_bytes)),
                (t, Kind.DATASTORE, ds.pk, METRIC_USED_BYTES, float(ds.used_bytes)),
                (t, Kind.DATASTORE, ds.pk, METRIC_FREE_BYTES, float(ds.free_bytes))])  # fmt: skip
    was_usable = before == DatastoreState.READY and ds.free_bytes > 0 and previous_free > 0
    ds.save(update_fields=fields)
    if ds.state != before:
        emit(f"datastore.state.{ds.state}", ds, from_state=before, message=ds.state_message)
    if not was_usable:
        _wake_scheduler(ds)
    return ds


# --------------------------------------------------------------------------------------------
# helpers for the image and volume managers and the scheduler
# --------------------------------------------------------------------------------------------
def _reach(cluster_id: int | None) -> Q:
    unrestricted = Q(clusters__isnull=True)
    return unrestricted | Q(clusters=cluster_id) if cluster_id is not None else unrestricted


def pick_datastore(kind: str, *, cluster_id: int | None = None, need_bytes: int = 0) -> Datastore:
    """The READY datastore of ``kind`` reachable from ``cluster_id`` (unrestricted ones when
    ``None``) with at least ``need_bytes`` free, the one with most free space first.

    Raises ``Conflict`` (field ``datastore``) naming what was asked for when none fits.
    """
    qs = Datastore.objects.filter(kind=kind, state=DatastoreState.READY, free_bytes__gte=max(0, need_bytes))
    ids = qs.filter(_reach(cluster_id)).values("pk")
    ds = Datastore.objects.filter(pk__in=ids).order_by("-free_bytes", "pk").first()
    if ds is None:
        where = f" reachable from cluster {cluster_id}" if cluster_id is not None else ""
        raise Conflict(f"no ready {kind} datastore{where} with {_gib(need_bytes)} GiB free", field="datastore")
    return ds


def default_image_datastore() -> Datastore:
    """Where new images go by default: the unrestricted READY image datastore with most free
    space, else any READY image datastore. ``Conflict`` when the cloud has none."""
    try:
        return pick_datastore(DatastoreKind.IMAGE)
    except Conflict:
        ds = (
            Datastore.objects.filter(kind=DatastoreKind.IMAGE, state=DatastoreState.READY)
            .order_by("-free_bytes", "pk")
            .first()
        )
        if ds is None:
            raise Conflict("the cloud has no ready image datastore; an administrator must add one",
                           field="datastore") from None  # fmt: skip
        return ds


def _gib(n: int) -> str:
    return f"{n / GIB:g}" if n % GIB else str(n // GIB)


@dataclass(frozen=True)
class SystemReach:
    """Which hosts reach a system datastore with room: every host (``everywhere``) or those of
    ``clusters``. ``None`` from ``system_reach`` means the cloud has no system datastore."""

    everywhere: bool
    clusters: frozenset[int]

    def allows(self, cluster_id: int | None) -> bool:
        return self.everywhere or (cluster_id is not None and cluster_id in self.clusters)


@dataclass(frozen=True)
class SystemDatastores:
    """One snapshot of the system datastores (state, free bytes, clusters), for a scheduler pass."""

    rows: tuple[tuple[int, str, int, int | None], ...]  # (pk, state, free_bytes, cluster or None)

    @classmethod
    def load(cls) -> SystemDatastores | None:
        """The snapshot, or None when the cloud has no system datastore (the constraint does not apply)."""
        rows = tuple(
            Datastore.objects.filter(kind=DatastoreKind.SYSTEM).values_list("pk", "state", "free_bytes", "clusters")
        )
        return cls(rows) if rows else None

    def reach(self, need_bytes: int, pinned: Iterable[int] = ()) -> SystemReach:
        """Which hosts reach a READY system datastore with ``need_bytes`` free.

        ``pinned``: the system datastores the VM's disks already live on (chosen when it was
        created); then the host must reach every one of them, and each must be READY with room."""
        wanted = set(pinned)
        reach: dict[int, set[int | None]] = {}
        for pk, state, free, cluster in self.rows:
            if state == DatastoreState.READY and free >= max(0, need_bytes) and (not wanted or pk in wanted):
                reach.setdefault(pk, set()).add(cluster)
        if wanted:
            if set(reach) != wanted:
                return SystemReach(False, frozenset())
            everywhere, clusters = True, None  # the intersection of every pinned datastore's reach
            for ids in reach.values():
                if None in ids:
                    continue
                everywhere = False
                found = {c for c in ids if c is not None}
                clusters = found if clusters is None else clusters & found
            return SystemReach(everywhere, frozenset(clusters or ()))
        everywhere = any(None in ids for ids in reach.values())
        return SystemReach(everywhere, frozenset(c for ids in reach.values() for c in ids if c is not None))


def system_reach(need_bytes: int, pinned: Iterable[int] = ()) -> SystemReach | None:
    """For the scheduler: which hosts reach a READY system datastore with ``need_bytes`` free
    (``SystemDatastores.reach``); ``None`` when the cloud has no system datastore at all."""
    snapshot = SystemDatastores.load()
    return None if snapshot is None else snapshot.reach(need_bytes, pinned)


def vm_system_needs(vms: list[Any]) -> dict[int, tuple[int, set[int]]]:
    """Bytes each VM needs on its system datastore — its ``disk_gb`` plus the disks made there
    from its images (overlays, copies, empty disks) — and the system datastores those disks are
    on, for all ``vms`` in one query."""
    from ..models import VMDisk

    needs: dict[int, tuple[int, set[int]]] = {vm.pk: (vm.disk_gb * GIB, set()) for vm in vms}
    rows = VMDisk.objects.filter(
        vm_id__in=list(needs), datastore__kind=DatastoreKind.SYSTEM, clone__in=("cow", "copy", "empty")
    ).values_list("vm_id", "datastore_id", "size_bytes")
    for vm_id, ds_id, size in rows:
        total, pinned = needs[vm_id]
        pinned.add(ds_id)
        needs[vm_id] = (total + size, pinned)
    return needs


Keep = Callable[[Any, Mapping[int, "int | None"], list[int], str], tuple[list[int], str]]


def placement_filter(vms: list[Any]) -> Keep:
    """The scheduler's storage filter (``compute.hooks.placement_filter``), for one pass over
    ``vms``: keep the hosts that reach a READY system datastore with room for the VM's disks (a
    host reaches a datastore with no clusters, or one listing the host's cluster). Two queries
    per pass, whatever the number of VMs. A cloud without any system datastore places as before."""
    snapshot = SystemDatastores.load()
    needs = vm_system_needs(vms) if snapshot is not None else {}

    def keep(vm: Any, cluster_of: Mapping[int, int | None], ranked: list[int], reason: str) -> tuple[list[int], str]:
        if snapshot is None:
            return ranked, reason
        need, pinned = needs.get(vm.pk) or vm_system_needs([vm])[vm.pk]
        reach = snapshot.reach(need, pinned)
        kept = [hid for hid in ranked if reach.allows(cluster_of[hid])]
        if not kept:
            return [], f"no host reaches a system datastore with {-(-need // GIB)} GiB free"
        return kept, ""

    return keep
