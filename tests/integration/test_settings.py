"""The settings as a new process sees them: production values pass `check --deploy`, an empty
environment gives SQLite and eager Celery, and a missing SECRET_KEY outside DEBUG fails clearly.

Each test starts a fresh interpreter with a minimal environment (nothing inherited from the test
run, where pytest-django has set DJANGO_SETTINGS_MODULE to the test settings).
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test starts a new interpreter (seconds each)

ROOT = Path(__file__).resolve().parents[2]

PRINT_SETTINGS = """
import json
import django
django.setup()
from django.conf import settings
from config.celery import app
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
    "always_eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "app_always_eager": app.conf.task_always_eager,
    "broker_url": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
    "secure_cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
    "hsts": settings.SECURE_HSTS_SECONDS,
    "csp": "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE,
}))
"""


@pytest.fixture(autouse=True)
def _no_local_env_file():
    if (ROOT / ".env").exists():
        pytest.skip("a local .env file would leak into these fresh-process settings checks")


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the project root with only ``env`` (plus PATH/HOME) set."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "SYSTEMROOT") if key in os.environ}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def settings_with(**env: str) -> dict:
    proc = run(["-c", PRINT_SETTINGS], **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def production_env(tmp_path: Path) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return {
        "DEBUG": "false",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(50)),
        "ALLOWED_HOSTS": "loyalty.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "EMAIL_URL": "smtp://mailer:secret@smtp.example.com:587",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
    }


def check_deploy(**env: str) -> tuple[int, str]:
    proc = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    return proc.returncode, proc.stdout + proc.stderr


def test_check_deploy_reports_nothing_with_production_values(tmp_path):
    code, output = check_deploy(**production_env(tmp_path))
    assert code == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNINGS" not in output and "ERRORS" not in output, output


@pytest.mark.parametrize(
    ("missing", "check_id"),
    [("CELERY_BROKER_URL", "loyalty.W001"), ("CACHE_URL", "loyalty.W002")],
)
def test_check_deploy_fails_without_a_broker_or_a_shared_cache(tmp_path, missing, check_id):
    env = production_env(tmp_path)
    del env[missing]
    code, output = check_deploy(**env)
    assert code != 0, output
    assert check_id in output, output
    other = {"loyalty.W001", "loyalty.W002"} - {check_id}
    assert not any(i in output for i in other), output


def test_a_per_process_cache_url_is_not_a_shared_cache(tmp_path):
    code, output = check_deploy(**{**production_env(tmp_path), "CACHE_URL": "locmemcache://"})
    assert code != 0 and "loyalty.W002" in output, output


def test_the_demo_needs_neither(tmp_path):
    """DEBUG on: no broker and no cache server is the embedded default, not a mistake."""
    env = {k: v for k, v in production_env(tmp_path).items() if k not in ("CELERY_BROKER_URL", "CACHE_URL")}
    code, output = check_deploy(**{**env, "DEBUG": "true"})
    assert "loyalty.W001" not in output and "loyalty.W002" not in output, output


def test_production_values_are_not_the_demo_ones(tmp_path):
    values = settings_with(**production_env(tmp_path))
    assert values["debug"] is False
    assert values["always_eager"] is False and values["app_always_eager"] is False
    assert values["secure_cookies"] == [True, True, True] and values["hsts"] >= 31536000 and values["csp"]


def test_nothing_set_but_debug_gives_sqlite_and_eager_celery():
    values = settings_with(DEBUG="true")
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(ROOT / "db.sqlite3")
    assert values["always_eager"] is True
    assert values["app_always_eager"] is True
    assert values["broker_url"] == ""


def test_a_broker_url_turns_eager_celery_off():
    values = settings_with(DEBUG="true", CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert values["always_eager"] is False
    assert values["app_always_eager"] is False
    assert values["broker_url"] == "redis://127.0.0.1:6379/0"


def test_a_postgres_database_url_selects_postgresql():
    values = settings_with(DEBUG="true", DATABASE_URL="postgres://loyalty:pw@db.example.com:5432/loyalty")
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "loyalty"
    assert values["conn_max_age"] == 60


def test_without_debug_or_secret_key_manage_py_refuses_clearly():
    proc = run(["manage.py", "check"])
    assert proc.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY (or DEBUG=true for local development)." in proc.stderr, proc.stderr


CONCURRENT_SQLITE_WRITERS = """
import threading
import time
import django
django.setup()
from django.db import connection, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE counter (n integer)")
errors = []
barrier = threading.Barrier(2)

def read_then_write():
    try:
        barrier.wait(timeout=5)  # both begin together
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM counter")
                time.sleep(0.3)  # the other one reads meanwhile, unless it waits to begin
                cursor.execute("INSERT INTO counter VALUES (1)")
    except Exception as exc:  # reported to the test, not swallowed
        errors.append(repr(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=read_then_write) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT COUNT(*) FROM counter")
    print(errors, cursor.fetchone()[0])
"""


def test_the_embedded_sqlite_lets_two_requests_write_at_once(tmp_path):
    """Two read-then-write transactions at once (two admin users, or the API and the admin) both
    commit: the second waits for the first instead of failing with "database is locked"."""
    proc = run(["-c", CONCURRENT_SQLITE_WRITERS], DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[] 2", proc.stdout
