"""REST API routes of the images manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("images", views.ImageViewSet, basename="image")
