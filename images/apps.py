from django.apps import AppConfig


class ImagesConfig(AppConfig):
    """The image manager: the repository, uploads, formats, sharing."""

    name = "images"

    def ready(self) -> None:
        from storage import hooks

        from .services import core

        hooks.image_in_use.register(core.set_in_use)
        hooks.register_image.register(core.register_file)
