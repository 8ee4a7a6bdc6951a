"""The URL conf's error handlers: under ``/api/`` every error is JSON in the API's error
format (``{"detail": …}``), as the schema declares; the pages keep Django's HTML."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from .overload import server_error as overload_server_error


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"detail": "not found"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"detail": "bad request"}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"detail": "you do not have permission to perform this action"}, status=403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    response = overload_server_error(request)
    if response.status_code == 500 and _api(request):
        return JsonResponse({"detail": "internal server error: the failure was logged"}, status=500)
    return response
