"""PostgreSQL: pg_trgm GIN indexes that serve the member search (loyalty.selectors.member_search_q).

Django compiles ``name__icontains`` to ``UPPER("name"::text) LIKE UPPER('%...%')``, so each index is
on the same expression. ``phone__contains`` is a plain LIKE on the column. SQLite skips all of it
(TrigramExtension and the RunPython both do nothing there).
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = {
    "member_name_trgm": "UPPER(name::text) gin_trgm_ops",
    "member_email_trgm": "UPPER(email::text) gin_trgm_ops",
    "member_external_id_trgm": "UPPER(external_id::text) gin_trgm_ops",
    "member_phone_trgm": "phone gin_trgm_ops",
}


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON loyalty_member USING gin ({expression})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0012_view_reports_permission")]

    operations = [TrigramExtension(), migrations.RunPython(forwards, backwards)]
