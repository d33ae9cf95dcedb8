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
        "loyalty.tasks.sweep_outbox",
        "loyalty.tasks.purge_outbox",
    } <= names


def test_the_outbox_sweep_runs_every_few_seconds_and_replaces_the_old_requeue_jobs():
    sweep = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "loyalty.tasks.sweep_outbox")
    assert sweep["schedule"] == settings.OUTBOX_SWEEP_SECONDS <= 10
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert not {"retro.tasks.requeue_stalled_claims", "promotions.tasks.requeue_stalled_batches"} & names
