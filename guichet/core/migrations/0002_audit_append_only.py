from __future__ import annotations

from typing import Any

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION guichet_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'core_auditevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER core_auditevent_append_only
  BEFORE UPDATE OR DELETE ON core_auditevent
  FOR EACH ROW EXECUTE FUNCTION guichet_audit_append_only();
"""
ALLOW = """
DROP TRIGGER IF EXISTS core_auditevent_append_only ON core_auditevent;
DROP FUNCTION IF EXISTS guichet_audit_append_only();
"""
# SQLite has no TRUNCATE, so a DELETE trigger would also block the test suite's table flush:
# there only UPDATE is refused by the database, DELETE by the model layer.
SQLITE_FORBID = [
    "CREATE TRIGGER core_auditevent_no_update BEFORE UPDATE ON core_auditevent BEGIN SELECT RAISE(ABORT, 'core_auditevent is append-only'); END;",
]


def forbid(apps: Any, schema_editor: Any) -> None:
    # The database itself refuses edits, so even raw SQL or a bug cannot rewrite history.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_FORBID:
            schema_editor.execute(statement)


def allow(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS core_auditevent_no_update;")


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunPython(forbid, allow)]
