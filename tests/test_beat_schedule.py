"""Every periodic job in the beat schedule names a task that exists."""

from django.conf import settings

from config.celery import app


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert names <= set(app.tasks), names - set(app.tasks)
    assert {
        "loyalty.tasks.expire_points",
        "loyalty.tasks.activate_pending_points",
        "loyalty.tasks.requalify_tiers",
        "promotions.tasks.expire_codes",
        "promotions.tasks.purge_code_validations",
        "redemptions.tasks.expire_awards",
        "loyalty.tasks.purge_idempotency_records",
    } <= names
