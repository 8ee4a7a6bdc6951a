"""The storage pool driver contract.

A datastore is a storage pool with a driver. Drivers take and return plain values and frozen
dataclasses (``PoolSpec`` in, ``PoolInfo`` out); they never import Django or the ORM, and they
translate their library's errors into ``DriverError`` subclasses (CONVENTIONS §3).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DriverError(Exception):
    """A pool operation failed; the message is the storage backend's own."""


class PoolNotFound(DriverError):
    """No pool of that name is defined on the daemon."""


class PoolUnreachable(DriverError):
    """The daemon holding the pool cannot be reached."""


class InvalidPoolSpec(DriverError):
    """The spec lacks a setting its pool type needs (an NFS export, a Ceph pool…)."""


class PoolType(StrEnum):
    """The pool types Nephele drives (libvirt's names)."""

    DIR = "dir"
    LOGICAL = "logical"
    NETFS = "netfs"
    RBD = "rbd"


class PoolState(StrEnum):
    """libvirt's ``virStoragePoolState``, by name."""

    INACTIVE = "inactive"
    BUILDING = "building"
    RUNNING = "running"
    DEGRADED = "degraded"
    INACCESSIBLE = "inaccessible"


@dataclass(frozen=True)
class PoolSpec:
    """What a pool should look like on the daemon.

    ``source`` holds the type's own settings (see ``docs/storage.md``): ``logical``: ``vg`` and
    optional ``devices``; ``netfs``: ``host``, ``dir``, optional ``format`` and ``protocol``;
    ``rbd``: ``pool``, ``monitors`` (``host`` or ``host:port``), optional ``auth_username`` and
    ``secret_uuid``. ``dir`` needs none.
    """

    name: str
    type: PoolType
    target_path: str = ""
    source: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolInfo:
    """A pool as the daemon reports it (bytes)."""

    name: str
    state: PoolState
    capacity_bytes: int
    allocation_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class VolumeSpec:
    """A volume to create in a pool: a file (dir, netfs), a logical volume or an RBD image.

    ``format`` is ``qcow2`` or ``raw`` for file pools; LVM and RBD volumes are always raw.
    """

    name: str
    capacity_bytes: int
    format: str = "raw"


@dataclass(frozen=True)
class VolumeInfo:
    """A volume as the daemon reports it: its path (or RBD name) and sizes in bytes."""

    name: str
    path: str
    capacity_bytes: int
    allocation_bytes: int


class StoragePoolDriver(abc.ABC):
    """Define, start, measure and remove storage pools on one storage daemon."""

    #: pool types this driver can define
    pool_types: frozenset[PoolType] = frozenset()

    @abc.abstractmethod
    def pool_xml(self, spec: PoolSpec) -> str:
        """The pool definition for ``spec`` (raises ``InvalidPoolSpec`` on missing settings)."""

    @abc.abstractmethod
    def ensure_pool(self, spec: PoolSpec) -> PoolInfo:
        """Define (or redefine when changed), build, start and autostart the pool. Idempotent."""

    @abc.abstractmethod
    def refresh_pool(self, name: str) -> PoolInfo:
        """Rescan the pool and return its fresh figures (``PoolNotFound`` when undefined)."""

    @abc.abstractmethod
    def pool_info(self, name: str) -> PoolInfo:
        """The pool's last known figures without a rescan (``PoolNotFound`` when undefined)."""

    @abc.abstractmethod
    def undefine_pool(self, name: str) -> None:
        """Stop the pool and forget its definition; the data stays. Idempotent."""

    @abc.abstractmethod
    def volume_xml(self, pool_type: PoolType, spec: VolumeSpec) -> str:
        """The volume definition for ``spec`` in a pool of ``pool_type``."""

    @abc.abstractmethod
    def create_volume(self, pool: PoolSpec, spec: VolumeSpec) -> VolumeInfo:
        """Create the volume in the (running) pool; an existing one of that name is returned. Idempotent."""

    @abc.abstractmethod
    def delete_volume(self, pool_name: str, name: str) -> None:
        """Delete the volume and its data. Idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection, if any."""
