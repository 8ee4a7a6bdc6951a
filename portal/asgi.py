"""ASGI entry point: HTTP through Django, websockets through Channels (live VM and host state)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from compute.routing import websocket_urlpatterns  # noqa: E402
from portal.fanout import raw_frames_middleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # raw_frames_middleware: the live fan-out writes one encoded frame to many daphne sockets
        "websocket": raw_frames_middleware(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
