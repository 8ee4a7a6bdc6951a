"""Browser pages of the images manager (mounted under /images/ by portal/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
