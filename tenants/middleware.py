"""Keeps the user's active project (chosen in the header switcher) on ``request.project``."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .models import Project


class ActiveProjectMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.project = None  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith("/api/"):
            visible = Project.objects.restrict(user, "view")
            pk = request.session.get("project_id")
            project = visible.filter(pk=pk).first() if pk else None
            if project is None:
                project = visible.order_by("pk").first()
                if project is not None:
                    request.session["project_id"] = project.pk
            request.project = project  # type: ignore[attr-defined]
        return self.get_response(request)
