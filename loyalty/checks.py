"""``manage.py check --deploy`` warnings for a production set-up that would quietly misbehave.

* ``loyalty.W001``: no ``CELERY_BROKER_URL``: every task (code generation, retro processing,
  emails) would run inline, inside the web request that queued it.
* ``loyalty.W002``: no shared cache (``CACHE_URL`` unset, or a per-process backend): the API
  throttles and the promotion-code lockout counters would be kept per process, so each gunicorn
  worker counts on its own and a guesser gets as many tries as there are workers.

Deploy checks only, and only with DEBUG off (the demo runs without a broker or a cache server on
purpose). ``check --deploy --fail-level WARNING`` turns them into a failed deploy.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register

PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.security, deploy=True)
def production_services(app_configs=None, **kwargs) -> list[Warning]:
    if settings.DEBUG:
        return []
    warnings = []
    if not getattr(settings, "CELERY_BROKER_URL", ""):
        warnings.append(
            Warning(
                "CELERY_BROKER_URL is not set: every task runs inline, inside the web request that queued it.",
                hint="Set CELERY_BROKER_URL=redis://host:6379/0 and run a Celery worker and beat.",
                id="loyalty.W001",
            )
        )
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend in PER_PROCESS_CACHES:
        warnings.append(
            Warning(
                f"The cache ({backend.rsplit('.', 1)[-1]}) is per process: API throttles and the code and "
                "lockout counters would be counted by each web process on its own.",
                hint="Set CACHE_URL=redis://host:6379/1 (a shared cache).",
                id="loyalty.W002",
            )
        )
    return warnings
