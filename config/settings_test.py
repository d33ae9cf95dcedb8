"""Settings for the test suite: the normal settings with a throwaway secret.

Everything else (DATABASE_URL, CELERY_BROKER_URL...) still comes from the environment, so the
same suite runs on SQLite and, in CI's second pass, on PostgreSQL + Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-use-0123456789abcdef")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Tests talk plain HTTP to the test client and the live server, and don't run collectstatic.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# The tests' webhook receivers listen on 127.0.0.1 (production refuses loopback, see settings.py).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
EVENTS_FEED_SETTLE_SECONDS = 0

# The read replica's alias (loyalty/replica.py) as a mirror of the test database: tests/test_replica.py
# turns the route on with READ_REPLICA = "replica"; every other test reads and writes the primary.
DATABASES.setdefault("replica", {**DATABASES["default"], "TEST": {"MIRROR": "default"}})  # noqa: F405
