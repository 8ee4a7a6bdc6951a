"""REST API routes of the storage manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
