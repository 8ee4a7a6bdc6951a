"""The audit trail moves to the information manager (monitoring.AuditRecord): state only, the
table ``compute_auditrecord`` stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("compute", "0005_vm_user_data")]
    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="AuditRecord")]),
    ]
