"""Batches pending or running before the outbox existed get their generation written to it."""

from django.db import migrations
from django.utils import timezone


def backfill(apps, schema_editor):
    CodeBatch = apps.get_model("promotions", "CodeBatch")
    OutboxMessage = apps.get_model("loyalty", "OutboxMessage")
    now = timezone.now()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(
            kind="task", name="promotions.tasks.generate_code_batch", args=[pk], available_at=now, created_at=now
        )
        for pk in CodeBatch.objects.filter(status__in=["pending", "running"]).values_list("pk", flat=True).iterator()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("promotions", "0005_code_campaign_index"),
        ("loyalty", "0008_outbox_and_idempotency_lease"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
