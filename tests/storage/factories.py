"""factory_boy factories for the storage manager's tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import factory
from django.utils import timezone

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
    monitored_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def clusters(self, create: bool, extracted: list | None, **kwargs: object) -> None:
        if create and extracted:
            self.clusters.set(extracted)


def image_in(ds: Datastore, *, project: object, owner: object, name: str = "img") -> object:
    """An image row stored in ``ds`` (what the image manager's upload would leave), to make the
    datastore non-empty."""
    from images.models import Image, ImageState

    return Image.objects.create(project=project, owner=owner, name=name, datastore=ds, state=ImageState.READY,
                                path=f"{ds.path}/{name}.qcow2")  # fmt: skip
