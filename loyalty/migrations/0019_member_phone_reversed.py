"""PostgreSQL: the member search finds a phone by its last digits (the whole number, or its end):
``REVERSE(phone) LIKE '7000054407%'``, served by a btree on that expression with pattern ops. The
trigram index on the phone (0013) is dropped: every number shares its country and area code, so
their trigrams are in nearly every row and one search read posting lists of a million entries
(82 ms at 1M members). SQLite skips it.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS member_phone_reversed ON loyalty_member (REVERSE(phone::text) text_pattern_ops)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS member_phone_trgm")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE INDEX IF NOT EXISTS member_phone_trgm ON loyalty_member USING gin (phone gin_trgm_ops)")
    schema_editor.execute("DROP INDEX IF EXISTS member_phone_reversed")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0018_insight_daily_rollup")]

    operations = [migrations.RunPython(forwards, backwards)]
