"""REST API routes of the storage manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

from .datastores import DatastoreViewSet

router = DefaultRouter()
router.register("datastores", DatastoreViewSet, basename="datastore")

from .volumes import TemplateDiskViewSet, VMDiskViewSet, VolumeViewSet  # noqa: E402

router.register("volumes", VolumeViewSet, basename="volume")
router.register("vm-disks", VMDiskViewSet, basename="vm-disk")
router.register("template-disks", TemplateDiskViewSet, basename="template-disk")
