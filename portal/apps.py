import os

from django.apps import AppConfig


def close_pools_before_fork() -> None:
    """A forked child must not share its parent's pooled sockets (prefork Celery workers,
    multiprocessing servers in tests): the parent closes its pools before the fork, and each
    side opens its own on its next query. Skipped inside a transaction (nothing forks there)."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if not conn.settings_dict.get("OPTIONS", {}).get("pool") or conn.in_atomic_block:
            continue
        conn.close()
        conn.close_pool()


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Nephele portal"

    def ready(self) -> None:
        os.register_at_fork(before=close_pools_before_fork)
        from django.conf import settings

        from .throttling import parse_rate

        for name in ("NEPHELE_API_RATE_USER", "NEPHELE_API_RATE_TOKEN", "NEPHELE_API_RATE_ANON"):
            parse_rate(getattr(settings, name))  # a malformed rate stops the start, naming it
