from django.urls import path

from . import console_consumers, consumers

websocket_urlpatterns = [
    path("ws/live/", consumers.LiveConsumer.as_asgi()),
    path("ws/console/<int:pk>/serial/", console_consumers.SerialConsoleConsumer.as_asgi()),
    path("ws/console/<int:pk>/vnc/", console_consumers.VNCConsoleConsumer.as_asgi()),
]
