"""The Celery app. Tasks live in each app's tasks.py and are thin wrappers around services.

Every task derives from ``loyalty.outbox.OutboxTask``: a message published from the outbox marks its
row running, done or failed (see loyalty/outbox.py).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loyalty_backoffice", task_cls="loyalty.outbox:OutboxTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
