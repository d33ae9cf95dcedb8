"""The read replica route (issue 18, "beyond one machine"): reads that may lag a little go to it.

``DATABASE_REPLICA_URL`` adds the ``replica`` alias (docs/configuration.md) and ``READ_REPLICA``
names it. What goes there is chosen explicitly, with ``reporting()``: change lists (GET), exports,
reports and dashboards. Everything else, writes and anything read and then written (a service
locks and re-reads what it changes), stays on the primary: the router sends nothing anywhere on its
own. Inside a transaction on the primary, ``reporting()`` stays on the primary too, so a read in a
service never sees an older copy than the rows it is about to write.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet


def reporting_db() -> str:
    """The alias for reads that may lag: the replica if one is configured, else the primary."""
    alias = getattr(settings, "READ_REPLICA", "") or ""
    if not alias or alias not in connections.settings or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    return alias


def reporting(queryset: QuerySet) -> QuerySet:
    """``queryset`` on the replica (see ``reporting_db``)."""
    alias = reporting_db()
    return queryset if alias == queryset.db else queryset.using(alias)


class ReplicaRouter:
    """The replica holds the same rows as the primary: relations between them are fine, and only
    the primary is migrated (replication copies the schema)."""

    def db_for_read(self, model, **hints):
        return None  # the primary, unless a queryset says .using(reporting_db())

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        pool = {DEFAULT_DB_ALIAS, getattr(settings, "READ_REPLICA", "") or DEFAULT_DB_ALIAS}
        if obj1._state.db in pool and obj2._state.db in pool:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        replica = getattr(settings, "READ_REPLICA", "") or ""
        return False if replica and db == replica else None
