"""Browser pages of the network manager (mounted under /network/ by portal/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
