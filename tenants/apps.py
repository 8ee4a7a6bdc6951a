from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from . import signals
        from .security import record_failure, record_login

        signals.connect()
        user_login_failed.connect(record_failure, dispatch_uid="nephele-login-failed")
        user_logged_in.connect(record_login, dispatch_uid="nephele-logged-in")
