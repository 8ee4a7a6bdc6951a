"""A BRIN index on the raw samples' time: tiny, and right for append-only data (PostgreSQL only)."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS sample_ts_brin ON monitoring_sample USING brin (ts)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS sample_ts_brin")


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0002_samples")]
    operations = [migrations.RunPython(forwards, backwards)]
