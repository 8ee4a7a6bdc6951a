from django.apps import AppConfig


class NetworkConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "network"
