"""Test settings: the same as production-like settings, with the broker on its own Redis DB."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

from .settings import *  # noqa: E402,F403
from .settings import REDIS_URL  # noqa: E402

# Keep test queues apart from a `make run` on the same Redis.
_base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") >= 3 else REDIS_URL
REDIS_URL = f"{_base}/{os.environ.get('NEPHELE_TEST_REDIS_DB', '15')}"
CELERY_BROKER_URL = REDIS_URL
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
NEPHELE_SHUTDOWN_TIMEOUT = 5
# Each test run names its domains apart, so a real libvirtd shared with `make run` is never confused.
# a server started by a test may be given the test process's prefix (its VMs' file names match)
NEPHELE_DOMAIN_PREFIX = os.environ.get("NEPHELE_TEST_DOMAIN_PREFIX") or f"ntest{os.getpid()}"
