"""REST API routes of the storage manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

from .datastores import DatastoreViewSet

router = DefaultRouter()
router.register("datastores", DatastoreViewSet, basename="datastore")
