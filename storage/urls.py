"""Browser pages of the storage manager (mounted under /storage/ by portal/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
