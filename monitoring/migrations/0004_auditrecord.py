"""AuditRecord joins the information manager (state only: the table ``compute_auditrecord`` is kept)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_sample_brin"),
        ("compute", "0006_move_auditrecord"),
        ("tenants", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditRecord",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("actor_name", models.CharField(blank=True, max_length=150)),
                        ("action", models.CharField(max_length=32)),
                        ("object_type", models.CharField(max_length=32)),
                        ("object_id", models.CharField(max_length=64)),
                        ("object_name", models.CharField(blank=True, max_length=128)),
                        ("source_ip", models.GenericIPAddressField(blank=True, null=True)),
                        ("result", models.CharField(default="accepted", max_length=16)),
                        ("detail", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "project",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="tenants.project",
                            ),
                        ),
                    ],
                    options={"db_table": "compute_auditrecord", "ordering": ["-created_at", "-pk"]},
                ),
            ]
        ),
    ]
