"""Codes row: bulk code generation through the real service against plain COPYs of ready codes.

Generates N codes (default 1,000,000) for one campaign with promotions.services.generate_code_batch
(what the Celery task runs), in a process of its own so that its peak memory is its own, and
compares it with two limits measured in the same run and database:

  pk+unique   COPY of N ready-made codes into a table with only a primary key and a unique index
              on the code (issue 18's limit);
  same idx    COPY of the same codes into ``LIKE promotions_code INCLUDING ALL`` (the same columns,
              CHECKs and indexes as the real table: what the service could reach with its indexes).

The ratio is against pk+unique. The ready-made list for the COPYs is built in this process, not in
the service's (its peak is reported apart).

    python -m bench.codes [--quick] [--codes 1000000]
Target: ratio >= 0.5, service peak < 500 MB.
"""

from __future__ import annotations

import json
import sys
import time

from bench import common
from bench.common import Row

MEMORY_TARGET_MB = 500


def generate_in_child(batch_id: int) -> None:
    """--child: run the service on an existing batch; print seconds and this process's peak."""
    from promotions import services
    from promotions.models import Code

    before = common.peak_mb()
    t0 = time.perf_counter()
    services.generate_code_batch(batch_id=batch_id)
    seconds = time.perf_counter() - t0
    generated = Code.objects.filter(batch_id=batch_id).count()
    print(json.dumps({"seconds": seconds, "peak_mb": common.peak_mb(), "before_mb": before, "generated": generated}))


def copy_limit(table: str, create: str, rows: list[tuple[str, str]], campaign_id: int) -> float:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(create)
        t0 = time.perf_counter()
        with cur.cursor.copy(
            f"COPY {table} (campaign_id, code, normalized, status, uses, max_uses, created_at, updated_at) FROM STDIN"
        ) as copy:
            for code, normalized in rows:
                copy.write_row((campaign_id, code, normalized, "active", 0, 1, "now", "now"))
        seconds = time.perf_counter() - t0
    return seconds


def main() -> None:
    if "--child" in sys.argv:
        _, db, batch_id = sys.argv[sys.argv.index("--child") :][:3]
        common.setup_django(db)
        generate_in_child(int(batch_id))
        return
    args = common.parse_args(__doc__.splitlines()[0], codes=0)
    n = common.size(args, "codes", 1_000_000, 20_000)
    with common.fresh_database("codes") as db:
        from promotions import codegen, services

        boss = common.superuser()
        campaign = services.create_campaign(actor=boss, name="Bench", kind="fixed_discount", value=5)
        batch = services.create_code_batch(campaign=campaign, actor=boss, count=n, length=12)
        common.log(f"generating {n:,} codes through the service (a child process)")
        service = common.child_json(
            "bench.codes", "--child", db, str(batch.pk), env={"CODE_BATCH_MAX_COUNT": str(max(n, 5_000_000))}
        )
        assert service["generated"] == n, service
        common.log(f"  {service['seconds']:.1f} s, peak {service['peak_mb']:.0f} MB")

        ready = codegen.generate(codegen.Pattern.build(length=12), n)
        rows = [(c, codegen.normalize(c)) for c in ready]
        del ready
        common.log("COPY of the ready-made codes into a PK + unique table")
        bare = copy_limit(
            "raw_codes_pk",
            "CREATE TABLE raw_codes_pk (LIKE promotions_code INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
            " PRIMARY KEY (id), UNIQUE (normalized));"
            " CREATE SEQUENCE raw_codes_pk_seq OWNED BY raw_codes_pk.id;"
            " ALTER TABLE raw_codes_pk ALTER id SET DEFAULT nextval('raw_codes_pk_seq')",
            rows,
            campaign.pk,
        )
        common.log(f"  {bare:.1f} s; COPY into an identically indexed table")
        same = copy_limit(
            "raw_codes_all", "CREATE TABLE raw_codes_all (LIKE promotions_code INCLUDING ALL)", rows, campaign.pk
        )
        common.log(f"  {same:.1f} s")
        indexes = common.sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'promotions_code'")[0][0]
        baseline_peak = common.peak_mb()

    seconds = service["seconds"]
    ratio = bare / seconds
    row = Row(
        "codes",
        f"{n:,} codes generated (service)",
        f"{seconds:.1f} s ({n / seconds:,.0f} codes/s), peak {service['peak_mb']:.0f} MB",
        limit=f"COPY pk+unique {bare:.1f} s; COPY with the same {indexes} indexes {same:.1f} s",
        ratio=ratio,
        target=f">= 0.5, < {MEMORY_TARGET_MB} MB",
        met=ratio >= 0.5 and service["peak_mb"] < MEMORY_TARGET_MB,
        details={
            "codes": n,
            "service_seconds": seconds,
            "service_peak_mb": service["peak_mb"],
            "service_start_mb": service["before_mb"],
            "copy_pk_unique_seconds": bare,
            "copy_same_indexes_seconds": same,
            "ratio_same_indexes": same / seconds,
            "indexes_on_promotions_code": indexes,
            "baseline_process_peak_mb": baseline_peak,
        },
    )
    common.emit(args, [row])


if __name__ == "__main__":
    main()
