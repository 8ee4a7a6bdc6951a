from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """The information manager: the event stream and its webhooks (monitoring series to come)."""

    name = "monitoring"
    verbose_name = "Information manager"
