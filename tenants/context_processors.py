from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .models import Project


def projects(request: HttpRequest) -> dict[str, Any]:
    """The projects for the header switcher."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"kerberos_enabled": bool(settings.NEPHELE_KRB5_KEYTAB)}
    return {
        "my_projects": Project.objects.restrict(user, "view").select_related("organization"),
        "active_project": getattr(request, "project", None),
    }
