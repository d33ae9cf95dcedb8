from django.core.management.base import BaseCommand

from loyalty.events import webhooks
from loyalty.models import WebhookDelivery


class Command(BaseCommand):
    help = (
        "Send every webhook delivery that is due now (what beat does every WEBHOOK_BEAT_SECONDS): onto the "
        "webhook queue, or, with --inline or no broker configured, here. Prints what is left by status."
    )

    def add_arguments(self, parser):
        parser.add_argument("--inline", action="store_true", help="POST from this process instead of the worker.")

    def handle(self, *args, **options):
        result = webhooks.deliver_due(inline=options["inline"])
        if result.error:
            self.stderr.write(f"Publishing stopped: {result.error}")
        self.stdout.write(f"Published {result.published}, ran {result.ran_inline} here.")
        for status in (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED):
            self.stdout.write(f"{status}: {WebhookDelivery.objects.filter(status=status).count()}")
