from django.apps import AppConfig


class StorageConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "storage"

    def ready(self) -> None:
        # Celery discovers ``storage.tasks`` by itself; the volume tasks live beside it
        from . import tasks_volumes  # noqa: F401
