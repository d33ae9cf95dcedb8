"""Database-level guards that Django models cannot express portably, and the role groups.

PostgreSQL only (SQLite relies on the model and service checks):
- a trigger that rejects UPDATE and DELETE on the append-only ledger tables;
- an exclusion constraint: a member's tier intervals never overlap (needs btree_gist).
"""

from django.db import migrations

APPEND_ONLY_TABLES = ["loyalty_ledgerentry", "loyalty_lotconsumption"]

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION loyalty_reject_append_only_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""

ROLES = ["Support agent", "Approver", "Campaign manager", "Auditor", "Integration"]


def add_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION_SQL)
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION loyalty_reject_append_only_change();"
        )
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist;")
    schema_editor.execute(
        "ALTER TABLE loyalty_tiermembership ADD CONSTRAINT tiermembership_no_overlap "
        "EXCLUDE USING gist (member_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&);"
    )


def remove_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE loyalty_tiermembership DROP CONSTRAINT IF EXISTS tiermembership_no_overlap;")
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS loyalty_reject_append_only_change();")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(add_guards, remove_guards),
        migrations.RunPython(create_groups, migrations.RunPython.noop),
    ]
