"""Overload answers 503 with ``Retry-After``, never 500 (issues 12 and 13).

Each process holds a bounded pool of database connections (Django's psycopg pool,
``NEPHELE_DB_POOL_MAX`` / ``NEPHELE_DB_POOL_TIMEOUT``). A request that waits longer than the
pool's timeout for a connection, or that PostgreSQL turns away (``too many clients``), is
answered ``503 Service Unavailable`` with ``Retry-After``: the client backs off and tries
again; nothing was changed. The same holds while the database is unreachable (down, restarting:
the fault tier stops it for 20 s during a burst). Everything else still goes to Django's 500 page.

``server_error`` is the URL conf's ``handler500``: Django calls it inside the ``except`` block
of the failed request, so the exception is at hand in ``sys.exc_info()``.
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error as django_server_error

RETRY_AFTER_S = 2
# PostgreSQL's SQLSTATE for "too many connections", "cannot connect now" (starting up), and the
# server going away under a session (admin / crash shutdown).
_OVERLOAD_SQLSTATES = {"53300", "57P03", "57P01", "57P02"}


def is_overload(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what it was raised from) says the database has no connection to give."""
    from psycopg_pool import PoolTimeout

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, PoolTimeout) or getattr(exc, "sqlstate", None) in _OVERLOAD_SQLSTATES:
            return True
        if _unreachable(exc):
            return True
        if "too many clients" in str(exc) or "remaining connection slots" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _unreachable(exc: BaseException) -> bool:
    """The database cannot be reached at all (down, restarting, the connection cut): psycopg's
    connection errors carry no SQLSTATE or one of class 08; Django's InterfaceError means the
    connection it held is gone."""
    import psycopg
    from django.db.utils import InterfaceError

    if isinstance(exc, InterfaceError | psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        return state is None or str(state).startswith("08")
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_overload(sys.exc_info()[1]):
        return django_server_error(request)
    detail = "the server is busy: no database connection was free in time (or the database is restarting); retry later"
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail}, status=503)
    else:
        response = HttpResponse(f"<h1>Busy</h1><p>{detail}.</p>", status=503, content_type="text/html")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response
