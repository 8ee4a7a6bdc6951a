"""Exactly one periodic scheduler, however many beat processes run (issue 11).

Every beat process uses ``LeaderScheduler`` (``CELERY_BEAT_SCHEDULER``). It sends periodic tasks
only while it holds a PostgreSQL session-level advisory lock (``pg_try_advisory_lock``), taken
on a connection of its own; the others stand by and try again every ``STANDBY_S`` seconds. The
lock is the server's, so it cannot be held twice: when the leader dies, is killed or loses its
connection, PostgreSQL releases it (TCP keep-alives bound how long a vanished peer keeps it) and
a standby becomes the leader at its next try. A leader checks its connection before every tick
and stops sending the moment it fails, so it never sends while another leads. Advisory locks
are per database, so two deployments on one PostgreSQL server do not contend.

With SQLite (the embedded default of ``make run``, one beat) the process is always the leader.
The lock's connection is named ``nephele-beat-<pid>`` (``pg_stat_activity.application_name``),
so an operator can see who leads::

    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
    WHERE l.locktype = 'advisory' AND l.objid = 7305;
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import psycopg
from celery.beat import PersistentScheduler
from django.conf import settings

log = logging.getLogger(__name__)

#: the advisory lock's key (one per database)
LOCK_KEY = 7305
#: how often a standby tries to take the lock, and how soon a leader re-checks it at the latest
STANDBY_S = 2.0


def _conninfo() -> dict[str, Any] | None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return None
    info: dict[str, Any] = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "application_name": f"nephele-beat-{os.getpid()}",
        "connect_timeout": 3,
        # a leader whose machine vanished releases the lock within about 20 s
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    return {k: v for k, v in info.items() if v is not None}


class Leadership:
    """The advisory lock, held on a connection of its own."""

    def __init__(self) -> None:
        self.conninfo = _conninfo()
        self.conn: psycopg.Connection[Any] | None = None
        self.leading = self.conninfo is None

    def held(self) -> bool:
        if self.conninfo is None:
            return True
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(autocommit=True, **self.conninfo)
            if self.leading:
                self.conn.execute("SELECT 1")  # the session, and so the lock, is still there
            else:
                row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                self.leading = bool(row and row[0])
                if self.leading:
                    log.warning("beat: leading (advisory lock %s taken)", LOCK_KEY)
        except psycopg.Error as exc:
            if self.leading:
                log.warning("beat: standing by: the lock's connection failed (%s)", exc)
            self.release()
        return self.leading

    def release(self) -> None:
        self.leading = self.conninfo is None
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None


class LeaderScheduler(PersistentScheduler):
    """Celery beat's persistent scheduler, ticking only while this process leads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.leadership = Leadership()
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.leadership.held():
            return STANDBY_S
        return min(float(super().tick(*args, **kwargs)), STANDBY_S)

    def close(self) -> None:
        self.leadership.release()
        super().close()
