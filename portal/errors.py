"""Errors services raise; the UI and the API turn them into messages and status codes."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every refusal a service makes. ``field`` names the input at fault, if any."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    status = 400


class PermissionDenied(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """Illegal in the current state, or lost a race with a concurrent request."""

    status = 409
