"""PostgreSQL: an index for the admin's and API's case-insensitive name-prefix search.

Django compiles ``name__istartswith`` to ``UPPER("name"::text) LIKE UPPER(...)``; this expression
index with text_pattern_ops serves it at a million members. SQLite needs nothing.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS member_name_upper_prefix ON loyalty_member (UPPER(name::text) text_pattern_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS member_name_upper_prefix")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0006_rollback_policy")]

    operations = [migrations.RunPython(forwards, backwards)]
