"""Member row: one member with 100,000 ledger entries: the admin member page, the balances API and
the ledger API.

One fresh database. The member is enrolled and credited by the real services; its credit (entry and
lot) is cloned with SQL until it has N entries (each a lot expiring over the next two years), the
balance is set to their sum, and it gets 1,000 redemptions (cloned from one real redemption). Each
page is requested through django.test.Client (server time): the admin change page as a superuser,
the two API endpoints with an Integration user's key. The median of --runs and the query count.

    python -m bench.member [--quick] [--entries 100000] [--runs 15]
Target: < 50 ms each.
"""

from __future__ import annotations

import time

from bench import common
from bench.common import Row

TARGET_MS = 50


def load(entries: int) -> int:
    from loyalty.models import LedgerEntry, PointLot, Reward
    from redemptions import services as redemptions

    boss = common.superuser()
    member = common.member_with_points("BIG", 50, actor=boss, email="big@example.com", name="Big Ledger")
    reward = Reward.objects.create(external_id="BADGE", name="Badge", type="badge", metric=common.metric(), points=10)
    redemption = redemptions.redeem_reward(member=member, reward=reward, actor=boss)
    credit = LedgerEntry.objects.filter(member=member, amount__gt=0).order_by("pk").first()
    lot = PointLot.objects.get(entry=credit)
    extra = entries - LedgerEntry.objects.filter(member=member).count()
    future = "now() + make_interval(days => 1 + g % 730)"
    common.clone_rows(
        "loyalty_ledgerentry",
        credit.pk,
        source=f"generate_series(1, {extra}) g",
        overrides={
            "amount": "1 + g % 100",
            "source_id": "'big-' || g",
            "idempotency_key": "NULL",
            "expires_at": future,
            "created_at": "now() - make_interval(secs => g)",
            "effective_at": "now() - make_interval(secs => g)",
        },
    )
    common.clone_rows(
        "loyalty_pointlot",
        lot.pk,
        source="loyalty_ledgerentry e",
        where="e.member_id = %s AND e.source_id LIKE 'big-%%'",
        params=[member.pk],
        overrides={"entry_id": "e.id", "amount": "e.amount", "remaining": "e.amount", "expires_at": "e.expires_at"},
    )
    common.sql(
        "UPDATE loyalty_pointbalance SET balance = balance + (SELECT sum(amount) FROM loyalty_ledgerentry"
        " WHERE member_id = %s AND source_id LIKE 'big-%%') WHERE member_id = %s",
        [member.pk, member.pk],
    )
    common.clone_rows(
        "redemptions_redemption",
        redemption.pk,
        source="generate_series(1, 999) g",
        overrides={"created_at": "now() - make_interval(mins => g)"},
    )
    common.analyze()
    return member.pk


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], entries=0, runs=0)
    entries = common.size(args, "entries", 100_000, 5_000)
    runs = common.size(args, "runs", 15, 5)
    out = []
    with common.fresh_database("member"):
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from loyalty.models import LedgerEntry

        pk = load(entries)
        have = LedgerEntry.objects.filter(member_id=pk).count()
        common.log(f"member BIG has {have:,} ledger entries")
        admin = Client()
        admin.force_login(common.superuser())
        api = Client(HTTP_AUTHORIZATION=f"Token {common.api_token(common.integration_user())}")
        pages = [
            ("admin member page", admin, f"/admin/loyalty/member/{pk}/change/"),
            ("GET /members/{id}/balances/", api, "/api/v1/members/BIG/balances/"),
            ("GET /members/{id}/ledger/", api, "/api/v1/members/BIG/ledger/"),
        ]
        for name, client, path in pages:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                client.get(path)
                times.append(time.perf_counter() - t0)
            with CaptureQueriesContext(connection) as ctx:
                client.get(path)
            ms = common.median_ms(times)
            slowest = max((float(q["time"]) * 1000, q["sql"][:200]) for q in ctx.captured_queries)
            common.log(f"  {name:<30} {ms:7.1f} ms  {len(ctx.captured_queries)} queries; slowest {slowest[0]:.1f} ms")
            out.append(
                Row(
                    "member",
                    f"{name}, {have:,} entries",
                    f"{ms:.0f} ms, {len(ctx.captured_queries)} queries",
                    target=f"< {TARGET_MS} ms",
                    met=ms < TARGET_MS,
                    details={
                        "entries": have,
                        "ms": ms,
                        "queries": len(ctx.captured_queries),
                        "slowest_query_ms": slowest[0],
                        "slowest_query": slowest[1],
                    },
                )
            )
    common.emit(args, out)


if __name__ == "__main__":
    main()
