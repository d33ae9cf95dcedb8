"""Export row: the admin's streamed CSV export of 1,000,000 redemptions against COPY ... TO STDOUT.

One fresh database; a redemption made by the real service is cloned with SQL into N rows (the
same mix as the admin row). The export (GET /admin/redemptions/redemption/export.csv as a superuser,
django.test.Client, the whole stream read) runs in a process of its own, so that its peak memory is
its own. The limit: ``COPY (<the same query>) TO STDOUT (FORMAT csv)`` of the export's own queryset
(the SQL Django generates for it), read to the end by psycopg in this process.

    python -m bench.export [--quick] [--rows 1000000]
Target: ratio >= 0.3, export peak < 200 MB.
"""

from __future__ import annotations

import json
import sys
import time

from bench import common
from bench.common import Row

TARGET = 0.3
MEMORY_TARGET_MB = 200
PATH = "/admin/redemptions/redemption/export.csv"


def export_in_child() -> None:
    """--child: stream the export to the end; print seconds, bytes, lines and this process's peak."""
    from django.test import Client

    client = Client()
    client.force_login(common.superuser())
    before = common.peak_mb()
    t0 = time.perf_counter()
    response = client.get(PATH)
    assert response.status_code == 200, response.status_code
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {"seconds": seconds, "bytes": size, "lines": lines, "peak_mb": common.peak_mb(), "before_mb": before}
        )
    )


def export_sql() -> str:
    """The export's own query (admin queryset, export columns) as literal SQL, for COPY."""
    from django.contrib import admin
    from django.db import connection
    from django.test import RequestFactory

    from redemptions import resources
    from redemptions.models import Redemption

    request = RequestFactory().get(PATH)
    request.user = common.superuser()
    model_admin = admin.site._registry[Redemption]
    queryset = model_admin.get_export_queryset(request)
    sql, params = queryset.values_list(*[lookup for _, lookup in resources.EXPORT_COLUMNS]).query.sql_with_params()
    with connection.cursor() as cur:
        return cur.cursor.mogrify(sql, params)


def main() -> None:
    if "--child" in sys.argv:
        common.setup_django(sys.argv[sys.argv.index("--child") + 1])
        export_in_child()
        return
    args = common.parse_args(__doc__.splitlines()[0], rows=0)
    rows = common.size(args, "rows", 1_000_000, 20_000)
    with common.fresh_database("export") as db:
        from bench import admin_lists

        common.log(f"loading {rows:,} redemptions")
        admin_lists.load(admin_lists.templates(), 1, rows, kinds=("redemptions",))
        common.log("the streamed export (a child process)")
        export = common.child_json("bench.export", "--child", db)
        common.log(f"  {export['seconds']:.1f} s, {export['lines']:,} lines, peak {export['peak_mb']:.0f} MB")
        from django.db import connection

        query = export_sql()
        size = 0
        t0 = time.perf_counter()
        with connection.cursor() as cur, cur.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for data in copy:
                size += len(data)
        copy_seconds = time.perf_counter() - t0
        common.log(f"  COPY TO STDOUT {copy_seconds:.1f} s, {size:,} bytes")

    ratio = copy_seconds / export["seconds"]
    row = Row(
        "export",
        f"streamed CSV export, {export['lines'] - 1:,} redemptions",
        f"{export['seconds']:.1f} s ({export['bytes'] / 1e6:.0f} MB), peak {export['peak_mb']:.0f} MB",
        limit=f"COPY TO STDOUT {copy_seconds:.1f} s ({size / 1e6:.0f} MB)",
        ratio=ratio,
        target=f">= {TARGET}, < {MEMORY_TARGET_MB} MB",
        met=ratio >= TARGET and export["peak_mb"] < MEMORY_TARGET_MB,
        details={
            "rows": rows,
            **{f"export_{k}": v for k, v in export.items()},
            "copy_seconds": copy_seconds,
            "copy_bytes": size,
        },
    )
    common.emit(args, [row])


if __name__ == "__main__":
    main()
