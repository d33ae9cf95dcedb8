"""PostgreSQL: the member search finds a customer id by its start in any case
(``external_id__istartswith``: ``UPPER(external_id) LIKE 'M-5000%'``), served by a btree on that
expression with pattern ops; the trigram index on the id (0013) is no longer used and is dropped.
SQLite skips it.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS member_external_id_upper ON loyalty_member (UPPER(external_id::text) text_pattern_ops)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS member_external_id_trgm")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS member_external_id_trgm ON loyalty_member USING gin (UPPER(external_id::text) gin_trgm_ops)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS member_external_id_upper")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0015_report_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]
