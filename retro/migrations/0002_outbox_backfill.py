"""Claims approved before the outbox existed get their processing written to it, so none is stranded."""

from django.db import migrations
from django.utils import timezone


def backfill(apps, schema_editor):
    RetroClaim = apps.get_model("retro", "RetroClaim")
    OutboxMessage = apps.get_model("loyalty", "OutboxMessage")
    now = timezone.now()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(kind="task", name="retro.tasks.process_retro_claim", args=[pk], available_at=now, created_at=now)
        for pk in RetroClaim.objects.filter(status="approved").values_list("pk", flat=True).iterator()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("retro", "0001_initial"),
        ("loyalty", "0008_outbox_and_idempotency_lease"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
