"""Benchmark: the admin Redemptions screen over a million redemptions on PostgreSQL.

Creates a fresh database (loyalty_bench_<pid>), migrates it, COPYs N redemptions (default
1,000,000; a few members and rewards, 10% awards, a year of dates), ANALYZEs, then renders
/admin/redemptions/redemption/ as a superuser through django.test.Client several times and
prints the median server time and the query count, for the plain list and a few common views
(a status filter, a search by email, the approval queue). It also times the equivalent raw page
query (same joins, ORDER BY created_at DESC, id DESC LIMIT 100) in PostgreSQL and prints the
ratio. The database is dropped at the end.

    python bench/admin_redemptions.py [--rows 1000000] [--runs 7]
Target: under 300 ms server time per page, a bounded number of queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")

RAW_PAGE_SQL = """
SELECT r.*, m.*, w.*, c.*
FROM redemptions_redemption r
JOIN loyalty_member m ON m.id = r.member_id
JOIN loyalty_reward w ON w.id = r.reward_id
LEFT JOIN promotions_code c ON c.id = r.issued_code_id
WHERE r.kind = 'redemption' OR (r.kind = 'award' AND r.award_status = 'claimed')
ORDER BY r.created_at DESC, r.id DESC
LIMIT 100
"""


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def load(n: int, members: list[int], rewards: list[tuple[int, int, int]]) -> float:
    """COPY n redemptions; returns seconds."""
    from django.db import connection

    rng = random.Random(42)
    now = dt.datetime.now(dt.UTC)
    year = 365 * 86400
    columns = (
        "kind, member_id, reward_id, quantity, points_spent, metric_id, points_returned, status, award_status,"
        " approval_status, fulfillment_status, tracking_ref, channel, reason, external_ref, stock_returned,"
        " decision_reason, created_at, updated_at"
    )
    statuses = ["pending"] * 5 + ["processing", "completed", "completed", "completed", "canceled"]
    t0 = time.perf_counter()
    with connection.cursor() as cur, cur.cursor.copy(f"COPY redemptions_redemption ({columns}) FROM STDIN") as copy:
        for i in range(n):
            reward_id, points, metric_id = rewards[i % len(rewards)]
            created = now - dt.timedelta(seconds=year * (n - i) / n + rng.random())
            award = i % 10 == 0
            copy.write_row(
                (
                    "award" if award else "redemption",
                    members[rng.randrange(len(members))],
                    reward_id,
                    1,
                    0 if award else points,
                    metric_id,
                    0,
                    statuses[i % len(statuses)],
                    ("pending", "awarded", "claimed")[i % 3] if award else None,
                    "submitted" if i % 5000 == 0 else None,
                    None,
                    "",
                    "api",
                    "bench" if award else "",
                    "",
                    False,
                    "",
                    created,
                    created,
                )
            )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    db = f"loyalty_bench_{os.getpid()}"
    admin_sql(f"CREATE DATABASE {db}")
    env = {**os.environ, "DATABASE_URL": f"{PG}/{db}", "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    os.environ.update(env)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from loyalty import services as loyalty
        from loyalty.models import Metric, Reward

        # The test client's host. (Not setup_test_environment(): it instruments template rendering,
        # which would slow the very thing measured here.)
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        boss = User.objects.create_superuser("bench", "bench@example.com", "x")
        metric = Metric.objects.create(code="points", name="Points")
        members = [
            loyalty.enroll_member(external_id=f"B-{i}", email=f"b{i}@example.com", name=f"Bench {i}").pk
            for i in range(50)
        ]
        rewards = [
            (
                Reward.objects.create(
                    external_id=f"RW-{i}",
                    name=f"Reward {i}",
                    type="physical_product",
                    metric=metric,
                    points=10 * (i + 1),
                ).pk,
                10 * (i + 1),
                metric.pk,
            )
            for i in range(10)
        ]
        seconds = load(args.rows, members, rewards)
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print(f"redemptions loaded: {args.rows:,} in {seconds:.1f} s (COPY), PostgreSQL {connection.pg_version}")

        client = Client()
        client.force_login(boss)
        pages = [
            ("Redemptions list", "/admin/redemptions/redemption/"),
            ("  filter status=pending", "/admin/redemptions/redemption/?status__exact=pending"),
            ("  filter last 7 days", "/admin/redemptions/redemption/?created_within=7"),
            ("  search by email", "/admin/redemptions/redemption/?q=b7%40example.com"),
            ("  page 50", "/admin/redemptions/redemption/?p=50"),
            ("Approval queue", "/admin/redemptions/redemption/queue/"),
            ("Awards list", "/admin/redemptions/award/"),
        ]
        results = {}
        for label, path in pages:
            assert client.get(path).status_code == 200, path  # warm up
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200
            with CaptureQueriesContext(connection) as ctx:
                client.get(path)
            results[label] = (median_ms(times), len(ctx.captured_queries), ctx.captured_queries)

        raw = []
        with connection.cursor() as cur:
            for _ in range(args.runs + 1):
                t0 = time.perf_counter()
                cur.execute(RAW_PAGE_SQL)
                cur.fetchall()
                raw.append(time.perf_counter() - t0)
        raw_ms = median_ms(raw[1:])

        print(f"\nmedian of {args.runs} renders (server time through django.test.Client), queries per page:")
        for label, (ms, queries, _) in results.items():
            flag = "ok" if ms < 300 else "SLOW"
            print(f"  {label:<26} {ms:8.1f} ms  {queries:3d} queries  {flag}")
        list_ms, list_queries, captured = results["Redemptions list"]
        print(f"\nraw PostgreSQL page query (same joins, LIMIT 100): {raw_ms:.1f} ms")
        print(
            f"ratio list render / raw query: {list_ms / raw_ms:.1f}x   (target: list < 300 ms -> "
            f"{'met' if list_ms < 300 else 'NOT met'})"
        )
        print("\nslowest queries of one list render:")
        for q in sorted(captured, key=lambda q: float(q["time"]), reverse=True)[:4]:
            print(f"  {float(q['time']) * 1000:7.1f} ms  {q['sql'][:150]}")
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
