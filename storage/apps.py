from django.apps import AppConfig


class StorageConfig(AppConfig):
    """The storage manager: datastores, VM disks and volumes."""

    name = "storage"

    def ready(self) -> None:
        # Celery discovers ``storage.tasks`` by itself; the volume tasks live beside it
        from compute import hooks

        from . import tasks_volumes, vmdisks  # noqa: F401
        from .services.datastores import placement_filter

        # storage joins a VM first (its disks), then the network manager (order 20)
        hooks.vms_created.register(vmdisks.on_vms_created, order=10)
        hooks.image_requested.register(vmdisks.on_image_requested)
        hooks.bootable_images.register(vmdisks.bootable_images)
        hooks.disk_specs.register(vmdisks.disk_specs)
        hooks.boot_files.register(vmdisks.boot)
        hooks.specs_prefetch.register(vmdisks.prefetch)
        hooks.vm_done.register(vmdisks.on_vm_done, order=10)
        hooks.placement_filter.register(placement_filter)
        # the outbox renders a volume step's message from the committed row when it publishes it
        from portal import outbox

        outbox.register_renderer("hostagent.run_volume_step", tasks_volumes.render_volume_step)
