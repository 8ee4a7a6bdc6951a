"""Nephele portal: the Django project (settings, URLs, ASGI, Celery app, shared UI)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
