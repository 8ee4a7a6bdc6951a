from django.apps import AppConfig


class ImagesConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "images"
