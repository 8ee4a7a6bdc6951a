"""Nephele settings.

Everything that differs between a laptop, CI and production comes from the environment:
``DATABASE_URL`` (default: SQLite in the repo), ``REDIS_URL`` (broker, results and the
Channels layer; ``make run`` starts a private Redis when it is unset), ``NEPHELE_SECRET_KEY``,
``NEPHELE_DEBUG``, ``NEPHELE_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


# Off unless a developer asks for it: DEBUG pages show tracebacks, local variables and settings.
DEBUG = env_bool("NEPHELE_DEBUG", False)
SECRET_KEY = os.environ.get("NEPHELE_SECRET_KEY", "dev-insecure-nephele-key-change-me-in-production-0123456789")
ALLOWED_HOSTS = os.environ.get("NEPHELE_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")


def csrf_trusted_origins(environ: Mapping[str, str], allowed_hosts: list[str]) -> list[str]:
    """The origins the portal's forms may post from: NEPHELE_CSRF_TRUSTED_ORIGINS when set, else
    derived from the served address — every concrete name of ALLOWED_HOSTS on the served PORT
    (``http://host:PORT``), and over HTTPS on the default port for a name that is not loopback (the
    public address behind a TLS proxy). Wildcards (``*``, ``.example.org``) derive nothing."""
    given = environ.get("NEPHELE_CSRF_TRUSTED_ORIGINS")
    if given is not None:
        return [o.strip() for o in given.split(",") if o.strip()]
    port = environ.get("PORT") or "8000"
    origins: list[str] = []
    for host in allowed_hosts:
        host = host.strip()
        if not host or host == "*" or host.startswith(".") or host == "testserver":
            continue
        name = f"[{host}]" if ":" in host else host  # an IPv6 address
        origins.append(f"http://{name}:{port}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            origins.append(f"https://{name}")
    return origins


CSRF_TRUSTED_ORIGINS = csrf_trusted_origins(os.environ, ALLOWED_HOSTS)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "guardian",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: no CDN
    "channels",
    "portal",
    "tenants",
    "compute",
    "network",
    "storage",
    "images",
    "federation",
    "billing",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.x509.TrustedProxyCertificateMiddleware",
    "tenants.security.SessionLifetimeMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "tenants.twofactor.Enforce2FAMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.ActiveProjectMiddleware",
]

ROOT_URLCONF = "portal.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.projects",
            ],
            # binary units labelled KiB / MiB / GiB everywhere (|iec_size, not |filesizeformat)
            "builtins": ["portal.templatetags.portal_units"],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "portal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (portal, workers, beat) share the file: wait for locks instead of failing.
    # IMMEDIATE transactions take the write lock up front (no lock-upgrade deadlocks); WAL lets
    # readers run beside the writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif os.environ.get("NEPHELE_DB_POOL", "1") != "0":
    # A bounded pool per process (psycopg_pool): at most NEPHELE_DB_POOL_MAX connections, a
    # request waits NEPHELE_DB_POOL_TIMEOUT s for one and is then answered 503 + Retry-After
    # (portal/overload.py), never 500, and PostgreSQL's max_connections is never exhausted:
    # size it as processes × max. Connections go back to the pool at the end of each request.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("NEPHELE_DB_POOL_MIN", "1")),
        "max_size": int(os.environ.get("NEPHELE_DB_POOL_MAX", "16")),
        "timeout": float(os.environ.get("NEPHELE_DB_POOL_TIMEOUT", "10")),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["tenants.security.ThrottledModelBackend", "guardian.backends.ObjectPermissionBackend"]
GUARDIAN_ANONYMOUS_USER_NAME = None  # no anonymous grants: anonymous callers see nothing
GUARDIAN_MONKEY_PATCH_USER = False
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Login throttling (tenants/security.py, docs/authentication.md): failures count per (account,
# client address) with exponential back-off, plus a limit per address across all accounts; no
# count per account alone, so nobody can lock an account out from elsewhere.
NEPHELE_LOGIN_BACKOFF_AFTER = int(os.environ.get("NEPHELE_LOGIN_BACKOFF_AFTER", "5"))
NEPHELE_LOGIN_BACKOFF_MAX_S = int(os.environ.get("NEPHELE_LOGIN_BACKOFF_MAX_S", "900"))
NEPHELE_LOGIN_BACKOFF_MEMORY_S = int(os.environ.get("NEPHELE_LOGIN_BACKOFF_MEMORY_S", str(24 * 3600)))
NEPHELE_LOGIN_FAILURES_PER_IP = int(os.environ.get("NEPHELE_LOGIN_FAILURES_PER_IP", "50"))
NEPHELE_LOGIN_IP_WINDOW_S = int(os.environ.get("NEPHELE_LOGIN_IP_WINDOW_S", "900"))
SESSION_COOKIE_AGE = int(os.environ.get("NEPHELE_SESSION_IDLE_S", str(2 * 3600)))  # idle lifetime
SESSION_SAVE_EVERY_REQUEST = True  # so the idle lifetime restarts at every request
NEPHELE_SESSION_ABSOLUTE_S = int(os.environ.get("NEPHELE_SESSION_ABSOLUTE_S", str(12 * 3600)))
OTP_TOTP_ISSUER = "Nephele"
# API tokens always expire: at most this many days after creation, and this long when the
# request names no lifetime (tenants/credentials.py, docs/authentication.md).
NEPHELE_TOKEN_MAX_DAYS = int(os.environ.get("NEPHELE_TOKEN_MAX_DAYS", "90"))
# Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed for the client's
# address (portal.api.client_ip: audit, login throttle, API rate limits). Empty: REMOTE_ADDR.
NEPHELE_TRUSTED_PROXIES = [a.strip() for a in os.environ.get("NEPHELE_TRUSTED_PROXIES", "").split(",") if a.strip()]
for _proxy in NEPHELE_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"NEPHELE_TRUSTED_PROXIES: {_proxy!r} is not an address or CIDR") from _exc
# API request rate limits (portal/throttling.py, docs/api.md): "<n>/<s|min|h>", "0" turns one off.
# Every API request counts against its user (and its token when it carries one); anonymous
# requests against their address.
NEPHELE_API_RATE_USER = os.environ.get("NEPHELE_API_RATE_USER", "1200/min")
NEPHELE_API_RATE_TOKEN = os.environ.get("NEPHELE_API_RATE_TOKEN", "600/min")
NEPHELE_API_RATE_ANON = os.environ.get("NEPHELE_API_RATE_ANON", "120/min")
# Addresses of TLS-terminating proxies whose X-SSL-Client-* headers are believed (tenants/x509.py).
NEPHELE_X509_TRUSTED_PROXIES = [a for a in os.environ.get("NEPHELE_X509_TRUSTED_PROXIES", "").split(",") if a]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Browser defences on every response (ASVS L2 §14.4): scripts and styles only from our own
# vendored files (no inline scripts, no eval, no CDN), nothing may frame the portal, forms post
# only to it; websockets go back to the portal itself.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # style attributes in templates and htmx's indicator styles; no script can run from CSS
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone", "payment", "usb",
    )
}  # fmt: skip
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True  # serve straight from static/ (production collects them: settings_production)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6399/0")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# Celery: the broker is Redis. Tasks are routed per host ("compute.host.<pk>") so a long-lived
# agent holds each hypervisor connection (the nova-compute pattern); see compute/tasks.py.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "nephele"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Several beat processes may run (one per control-plane machine): only the one holding a
# PostgreSQL advisory lock sends periodic tasks (portal/leader.py); the others stand by.
CELERY_BEAT_SCHEDULER = "portal.leader:LeaderScheduler"
# Redis: a message taken by a worker that died (acks_late) is delivered again after this long
# (kombu's default is an hour); longer than a step's sweeper deadline, as on the agent.
NEPHELE_VISIBILITY_TIMEOUT_S = float(os.environ.get("NEPHELE_VISIBILITY_TIMEOUT_S", "900"))
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": NEPHELE_VISIBILITY_TIMEOUT_S}
# RabbitMQ, the production broker (docs/operations.md): quorum queues (replicated, durable) for
# the control plane's and every host's queue, and publisher confirms, so a published step is on
# the broker's disk before the service moves on. The embedded default stays Redis.
if CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    # topic exchanges: a retry's countdown then waits in RabbitMQ (native delayed delivery), not
    # in a worker that holds the message and can take no other
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True  # quorum queues have no global QoS

# The transient-state sweeper (compute/services/sweeper.py): a step queued longer ago than the
# deadline is re-queued with the same sequence number, up to MAX_TRIES times, then failed.
NEPHELE_STEP_DEADLINE_S = float(os.environ.get("NEPHELE_STEP_DEADLINE_S", "600"))
NEPHELE_STEP_MAX_TRIES = int(os.environ.get("NEPHELE_STEP_MAX_TRIES", "3"))
NEPHELE_SWEEP_INTERVAL_S = float(os.environ.get("NEPHELE_SWEEP_INTERVAL_S", "30"))
# Image clones, conversions and imports report progress as they go; one that made none for this
# long is re-queued (its task is idempotent), up to NEPHELE_IMAGE_MAX_TRIES times, then failed.
NEPHELE_IMAGE_DEADLINE_S = float(os.environ.get("NEPHELE_IMAGE_DEADLINE_S", "1800"))
NEPHELE_IMAGE_MAX_TRIES = int(os.environ.get("NEPHELE_IMAGE_MAX_TRIES", "3"))

# The transactional outbox (portal/outbox.py): rows whose publish failed are retried this often.
NEPHELE_OUTBOX_RELAY_S = float(os.environ.get("NEPHELE_OUTBOX_RELAY_S", "5"))

CELERY_BEAT_SCHEDULE = {
    "portal.relay_outbox": {"task": "portal.relay_outbox", "schedule": NEPHELE_OUTBOX_RELAY_S},
    "compute.schedule_pending": {"task": "compute.schedule_pending", "schedule": 15.0},
    "compute.probe_hosts": {"task": "compute.probe_hosts", "schedule": 5.0},
    "compute.reconcile_hosts": {"task": "compute.reconcile_hosts", "schedule": 30.0},
    "compute.sweep_stuck": {"task": "compute.sweep_stuck", "schedule": NEPHELE_SWEEP_INTERVAL_S},
    "storage.sweep_stuck_volumes": {"task": "storage.sweep_stuck_volumes", "schedule": NEPHELE_SWEEP_INTERVAL_S},
    "images.sweep_stuck_images": {"task": "images.sweep_stuck_images", "schedule": NEPHELE_SWEEP_INTERVAL_S},
    "monitoring.rollup": {"task": "monitoring.rollup", "schedule": 60.0},
    "images.cleanup_uploads": {"task": "images.cleanup_uploads", "schedule": 600.0},
    "storage.monitor_datastores": {"task": "storage.monitor_datastores", "schedule": 60.0},
    "network.check_hosts": {"task": "network.check_hosts", "schedule": 60.0},
}

# Browser pushes do not use Channels' layer (none is configured): one Redis pub/sub channel
# per group (<NEPHELE_LIVE_CHANNEL>.<group>), each web process subscribed to the groups of its
# own sockets (portal/fanout.py, docs/monitoring.md). Default prefix: nephele.live.<db of
# REDIS_URL>. A socket's unsent pushes are bounded: a socket with NEPHELE_LIVE_SOCKET_BUFFER
# messages queued (its page neither reads nor acknowledges what it was sent) is closed (code
# 4013), and the page reconnects and re-reads what it shows.
NEPHELE_LIVE_CHANNEL = os.environ.get("NEPHELE_LIVE_CHANNEL", "")
NEPHELE_LIVE_SOCKET_BUFFER = max(1, int(os.environ.get("NEPHELE_LIVE_SOCKET_BUFFER", "256")))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiTokenAuthentication",
        "tenants.kerberos.NegotiateAuthentication",  # inactive unless NEPHELE_KRB5_KEYTAB is set
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.Paging",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["portal.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "portal.openapi.Schema",
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["portal.throttling.ApiRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Nephele API",
    "DESCRIPTION": "Nephele cloud OS: hosts, clusters, templates, virtual machines and their life cycle.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # the errors every operation may answer, in one format (portal/schema.py)
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "portal.schema.declare_errors"],
    # request bodies apart from responses: read-only fields are not asked for in a body
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "state", "kind", "format" or "visibility" field with their own
    # choices: name each enum after its model so the schema's names are stable.
    "ENUM_NAME_OVERRIDES": {
        "VMStateEnum": "compute.states.VMState",
        "HostStateEnum": "compute.states.HostState",
        "BootImageKindEnum": "compute.models.BootImage.Kind",
        "DatastoreKindEnum": "storage.models.DatastoreKind",
        "DatastoreStateEnum": "storage.models.DatastoreState",
        "VolumeStateEnum": "storage.models.VolumeState",
        "VolumeFormatEnum": "storage.models.VolumeFormat",
        "VMDiskKindEnum": "storage.models.VMDiskKind",
        "VMDiskStateEnum": "storage.models.VMDiskState",
        "ImageStateEnum": "images.models.ImageState",
        "ImageFormatEnum": "images.models.ImageFormat",
        "ImageVisibilityEnum": [("private", "private"), ("shared", "shared"), ("public", "public")],
        "NetworkVisibilityEnum": "network.models.Visibility",
        "LeaseKindEnum": "network.models.LeaseKind",
        "IsolationEnum": "network.models.Isolation",
    },
}

# Image repository: the largest virtual size an image may have (also capped by the project's
# remaining volume_gb quota); docs/images.md.
NEPHELE_IMAGE_MAX_VIRTUAL_GB = int(os.environ.get("NEPHELE_IMAGE_MAX_VIRTUAL_GB", "1024"))
# Where simulated hosts keep their libvirt test-driver node XML.
NEPHELE_STATE_DIR = Path(os.environ.get("NEPHELE_STATE_DIR", BASE_DIR / ".run"))
# Browser consoles (docs/operations.md#consoles): VNC of VMs whose template enables graphics listens
# on this address of their host: the loopback (default) or a management address the portal's
# websocket proxy reaches, never a public one. A console token lives NEPHELE_CONSOLE_TOKEN_TTL_S
# seconds and opens one session; an open session re-checks the user's access and the VM's state
# every NEPHELE_CONSOLE_RECHECK_S seconds.
NEPHELE_VNC_LISTEN = os.environ.get("NEPHELE_VNC_LISTEN", "127.0.0.1")
NEPHELE_CONSOLE_TOKEN_TTL_S = int(os.environ.get("NEPHELE_CONSOLE_TOKEN_TTL_S", "60"))
NEPHELE_CONSOLE_RECHECK_S = float(os.environ.get("NEPHELE_CONSOLE_RECHECK_S", "5"))
# The most of a VM's console log (its end) one request returns.
NEPHELE_CONSOLE_LOG_MAX_BYTES = int(os.environ.get("NEPHELE_CONSOLE_LOG_MAX_BYTES", str(1024 * 1024)))
# Domains are named <prefix>-<vm id> on the hypervisor; one prefix per installation sharing a host.
NEPHELE_DOMAIN_PREFIX = os.environ.get("NEPHELE_DOMAIN_PREFIX", "nephele")
# Seconds an ACPI shutdown may take before the VM goes back to RUNNING (OpenNebula's shutdown timeout).
NEPHELE_SHUTDOWN_TIMEOUT = int(os.environ.get("NEPHELE_SHUTDOWN_TIMEOUT", "60"))

# Failed probes in a row before a host is ERROR (and its HA VMs fail over).
NEPHELE_HOST_FAILED_PROBES = int(os.environ.get("NEPHELE_HOST_FAILED_PROBES", "3"))
# Fencing before failover, e.g. "ipmitool -H {name}-bmc -U admin -P secret power off"; it must exit 0
# before any VM moves. Empty: no fencing (only safe where a failed host cannot keep running VMs).
NEPHELE_FENCE_COMMAND = os.environ.get("NEPHELE_FENCE_COMMAND", "")
# Without a fence command, HA VMs of a host that stopped answering are restarted elsewhere only
# when an administrator confirms the host is down ("wait", OpenNebula's and Masakari's default),
# or at once ("restart": only where a failed host cannot keep running its VMs).
NEPHELE_HA_WITHOUT_FENCE = os.environ.get("NEPHELE_HA_WITHOUT_FENCE", "wait")
# Raw monitoring samples are kept this long; per-minute roll-ups 7 days, per-hour ones 400 days.
NEPHELE_RAW_RETENTION_S = int(os.environ.get("NEPHELE_RAW_RETENTION_S", str(6 * 3600)))
# First retry delay of a failed webhook delivery; doubles at every attempt.
NEPHELE_WEBHOOK_BACKOFF_S = float(os.environ.get("NEPHELE_WEBHOOK_BACKOFF_S", "2"))

# Single sign-on: LDAP / Active Directory (tenants/ldap.py) when NEPHELE_LDAP_URI is set,
# Kerberos SPNEGO (tenants/kerberos.py) when NEPHELE_KRB5_KEYTAB is set. docs/authentication.md.
from tenants.ldap_config import ldap_settings  # noqa: E402

_ldap = ldap_settings(os.environ)
if _ldap:
    globals().update(_ldap)
    AUTHENTICATION_BACKENDS.insert(0, "tenants.ldap.NepheleLDAPBackend")
NEPHELE_KRB5_KEYTAB = os.environ.get("NEPHELE_KRB5_KEYTAB", "")
NEPHELE_KRB5_SERVICE = os.environ.get("NEPHELE_KRB5_SERVICE", "HTTP")
NEPHELE_KRB5_CREATE_USERS = os.environ.get("NEPHELE_KRB5_CREATE_USERS", "false").lower() == "true"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("NEPHELE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
