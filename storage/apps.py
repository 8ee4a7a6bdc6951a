from django.apps import AppConfig


class StorageConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "storage"
