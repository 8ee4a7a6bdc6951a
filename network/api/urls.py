"""REST API routes of the network manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
