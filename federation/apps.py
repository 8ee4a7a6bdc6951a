from django.apps import AppConfig


class FederationConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "federation"
