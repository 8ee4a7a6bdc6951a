"""API tokens always expire: tokens made before this rule (``expires_at`` NULL) get
``NEPHELE_TOKEN_MAX_DAYS`` from now (a grace period to replace them), instead of never."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def expire_unbounded(apps, schema_editor):  # type: ignore[no-untyped-def]
    ApiToken = apps.get_model("tenants", "ApiToken")
    days = max(1, int(getattr(settings, "NEPHELE_TOKEN_MAX_DAYS", 90)))
    ApiToken.objects.filter(expires_at__isnull=True).update(expires_at=timezone.now() + timedelta(days=days))


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_project_group")]

    operations = [migrations.RunPython(expire_unbounded, migrations.RunPython.noop)]
