"""Host.alloc_vms: the number of claims on the host, counted once from the VMs."""

from django.db import migrations, models
from django.db.models import Count, Q

# compute.states.ON_HOST at the time of this migration
ON_HOST = [
    "PROLOG", "BOOT", "RUNNING", "MIGRATE", "SHUTDOWN", "SAVE", "EPILOG", "SUSPENDED", "POWEROFF", "UNKNOWN",
    "PROLOG_FAILURE", "BOOT_FAILURE", "MIGRATE_FAILURE", "EPILOG_FAILURE", "CRASH_FAILURE",
]  # fmt: skip


def recount(apps, schema_editor):  # type: ignore[no-untyped-def]
    Host = apps.get_model("compute", "Host")
    VM = apps.get_model("compute", "VirtualMachine")
    on = dict(VM.objects.filter(state__in=ON_HOST, host__isnull=False).values_list("host").annotate(n=Count("pk")))
    migrating = dict(
        VM.objects.filter(Q(state="MIGRATE"), target_host__isnull=False).values_list("target_host").annotate(n=Count("pk"))
    )
    for host in Host.objects.all():
        Host.objects.filter(pk=host.pk).update(alloc_vms=on.get(host.pk, 0) + migrating.get(host.pk, 0))


class Migration(migrations.Migration):
    dependencies = [("compute", "0009_operation_clock")]

    operations = [
        migrations.AddField(
            model_name="host",
            name="alloc_vms",
            field=models.PositiveIntegerField(default=0, help_text="VMs holding a claim on this host"),
        ),
        migrations.RunPython(recount, migrations.RunPython.noop),
    ]
