"""factory_boy factories for the storage manager's tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import factory

from storage.models import Datastore, DatastoreDriver, DatastoreKind, DatastoreState

GIB = 1024**3


def _tmp_path(n: int) -> str:
    base = Path(tempfile.gettempdir()) / "nephele-test-datastores"
    return str(base / f"ds{n}")


class DatastoreFactory(factory.django.DjangoModelFactory):
    """A READY ``dir`` datastore under the temp dir, with measured capacity (100 GiB, half free).

    Built directly (no pool on any daemon): tests of the libvirt pool go through the services.
    Pass ``clusters=[c1, c2]`` to restrict its reach.
    """

    class Meta:
        model = Datastore
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"ds{n}")
    kind = DatastoreKind.IMAGE
    driver = DatastoreDriver.DIR
    path = factory.Sequence(_tmp_path)
    state = DatastoreState.READY
    total_bytes = 100 * GIB
    used_bytes = 50 * GIB
    free_bytes = 50 * GIB

    @factory.post_generation
    def clusters(self, create: bool, extracted: list | None, **kwargs: object) -> None:
        if create and extracted:
            self.clusters.set(extracted)
