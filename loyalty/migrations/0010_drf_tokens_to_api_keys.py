"""Existing DRF tokens (``rest_framework.authtoken``, plaintext keys) become API keys.

Each token is stored as an ApiKey with the SHA-256 digest of its key, so integrations keep
working, but expiring MIGRATED_KEY_DAYS after this migration: the old tokens were readable on the
admin's Tokens screen, so treat them as exposed and rotate them (docs/operations.md, "API keys").
Then the plaintext table is dropped, and the token app's migration records and content types
(with their permissions) are removed: nothing stores a readable key any more. Not reversible.
"""

import datetime as dt
import hashlib

from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

MIGRATED_KEY_DAYS = 30
TABLE = "authtoken_token"


def import_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if TABLE not in connection.introspection.table_names():
        return  # a new install, or already migrated
    ApiKey = apps.get_model("loyalty", "ApiKey")
    ContentType = apps.get_model("contenttypes", "ContentType")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id, created FROM {TABLE}")
        rows = cursor.fetchall()
    now = timezone.now()
    for key, user_id, created in rows:
        if isinstance(created, str):
            created = parse_datetime(created)
        if created is not None and timezone.is_naive(created):
            created = timezone.make_aware(created, dt.UTC)
        ApiKey.objects.create(
            owner_id=user_id,
            name="Migrated DRF token (rotate it)",
            prefix=key[:7],
            digest=hashlib.sha256(key.encode()).hexdigest(),
            created_at=created or now,
            expires_at=now + dt.timedelta(days=MIGRATED_KEY_DAYS),
        )
    schema_editor.execute(f"DROP TABLE {TABLE}")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])
    ContentType.objects.filter(app_label="authtoken").delete()  # their permissions go with them


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0009_api_keys"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(import_drf_tokens, migrations.RunPython.noop, elidable=True)]
