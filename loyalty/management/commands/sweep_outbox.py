from django.core.management.base import BaseCommand

from loyalty import outbox
from loyalty.models import OutboxMessage


class Command(BaseCommand):
    help = (
        "Publish every outbox message that is due now (what beat's sweep does every few seconds); "
        "with no broker configured, run them here. Prints what is left by status."
    )

    def handle(self, *args, **options):
        result = outbox.sweep()
        if result.error:
            self.stderr.write(f"Publishing stopped: {result.error}")
        self.stdout.write(f"Published {result.published}, ran {result.ran_inline} inline, gave up {result.failed}.")
        for status in (OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED):
            count = OutboxMessage.objects.filter(status=status).count()
            self.stdout.write(f"{status}: {count}")
