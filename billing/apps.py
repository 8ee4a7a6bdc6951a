from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Empty shell until its manager's issue lands."""

    name = "billing"
