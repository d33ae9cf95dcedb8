"""Admin row: the big change lists at 1,000,000 rows, and their query counts at 10,000 and 1,000,000.

One fresh database. A template row of each kind is made by the real services (a member enrolled
and credited, a badge redeemed, a code generated, a purchase recorded); clone_rows copies it with
SQL (generate_series) into members, ledger entries, redemptions, codes and transactions: first
10,000 of each, then up to 1,000,000. At each size every list is rendered as a superuser through
django.test.Client (server time, no network): plain, with a filter and with a search; the median of
--runs renders, and the query count (and slowest query) of one more. The query count must not
grow with the rows.

    python -m bench.admin_lists [--quick] [--rows 1000000] [--small 10000] [--runs 7]
Target: < 300 ms server time per page.
"""

from __future__ import annotations

import time

from bench import common
from bench.common import Row

TARGET_MS = 300

# (list, view, path): the search terms exist in the data (see load()).
PAGES = [
    ("members", "plain", "/admin/loyalty/member/"),
    ("members", "filter status=suspended", "/admin/loyalty/member/?status__exact=suspended"),
    ("members", "search by email", "/admin/loyalty/member/?q=m7%40example.com"),
    ("ledger", "plain", "/admin/loyalty/ledgerentry/"),
    ("ledger", "filter kind=adjustment", "/admin/loyalty/ledgerentry/?kind__exact=adjustment"),
    ("ledger", "search by member", "/admin/loyalty/ledgerentry/?q=M-7"),
    ("redemptions", "plain", "/admin/redemptions/redemption/"),
    ("redemptions", "filter status=pending", "/admin/redemptions/redemption/?status__exact=pending"),
    ("redemptions", "search by email", "/admin/redemptions/redemption/?q=m7%40example.com"),
    ("codes", "plain", "/admin/promotions/code/"),
    ("codes", "filter status=redeemed", "/admin/promotions/code/?status__exact=redeemed"),
    ("codes", "search by code", "/admin/promotions/code/?q=BENCH000000007"),
    ("transactions", "plain", "/admin/loyalty/transaction/"),
    ("transactions", "filter non-loyalty", "/admin/loyalty/transaction/?loyalty=no"),
    ("transactions", "search by bill", "/admin/loyalty/transaction/?q=T-7"),
]


def pick(values: list[str], expr: str = "g") -> str:
    """An SQL expression cycling through ``values`` with g."""
    array = ", ".join(f"'{v}'" for v in values)
    return f"(ARRAY[{array}])[1 + ({expr}) % {len(values)}]"


def spread(hi: int) -> str:
    """created_at over the last year, newest for the highest g."""
    return f"now() - make_interval(secs => ({hi} - g) * 31536000.0 / {hi})"


def templates() -> dict[str, int]:
    """One row of each kind through the real services; returns their ids."""

    from loyalty import services as loyalty
    from loyalty.models import LedgerEntry, ProgramSettings, Reward
    from promotions import services as promotions
    from promotions.models import Code
    from redemptions import services as redemptions

    boss = common.superuser()
    ProgramSettings.objects.get_or_create(pk=1)
    member = common.member_with_points("M-0", 100, actor=boss, email="m0@example.com", name="Member 0")
    reward = Reward.objects.create(external_id="BADGE", name="Badge", type="badge", metric=common.metric(), points=10)
    redemption = redemptions.redeem_reward(member=member, reward=reward, actor=boss)
    campaign = promotions.create_campaign(actor=boss, name="Bench", kind="fixed_discount", value=5)
    batch = promotions.create_code_batch(campaign=campaign, actor=boss, count=1, length=10)
    promotions.generate_code_batch(batch_id=batch.pk)
    bill = loyalty.record_transaction(
        external_id="T-0", occurred_at=member.enrolled_at, amount="25.00", currency="EUR", member=member, actor=boss
    )
    return {
        "member": member.pk,
        "entry": LedgerEntry.objects.filter(member=member, amount__gt=0).order_by("pk").first().pk,
        "redemption": redemption.pk,
        "code": Code.objects.get(batch=batch).pk,
        "transaction": bill.pk,
    }


KINDS = ("ledger", "redemptions", "codes", "transactions")


def load(t: dict[str, int], lo: int, hi: int, kinds: tuple[str, ...] = KINDS) -> float:
    """Rows lo..hi of the members and of each of ``kinds`` (member g, entry g, ...); returns seconds."""
    series = f"generate_series({lo}, {hi}) g"
    t0 = time.perf_counter()
    common.clone_rows(
        "loyalty_member",
        t["member"],
        source=series,
        overrides={
            "external_id": "'M-' || g",
            "email": "'m' || g || '@example.com'",
            "name": "'Member ' || g",
            "status": "CASE WHEN g % 20 = 0 THEN 'suspended' WHEN g % 50 = 1 THEN 'closed' ELSE 'active' END",
            "enrolled_at": spread(hi),
        },
    )
    first = common.sql("SELECT min(id) FROM loyalty_member WHERE id <> %s", [t["member"]])[0][0]
    member = f"{first} + (g::bigint * 7919) % {hi}"  # members 1..hi exist now
    award = "g % 10 = 0"
    specs = {
        "ledger": (
            "loyalty_ledgerentry",
            {
                "member_id": member,
                "kind": pick(["earn", "earn", "earn", "retro", "adjustment", "award"]),
                "amount": "1 + g % 500",
                "created_at": spread(hi),
                "effective_at": spread(hi),
                "source_id": "'adm-' || g",
                "idempotency_key": "NULL",
            },
        ),
        "redemptions": (
            "redemptions_redemption",
            {
                "member_id": member,
                "kind": f"CASE WHEN {award} THEN 'award' ELSE 'redemption' END",
                "award_status": f"CASE WHEN {award} THEN {pick(['pending', 'awarded', 'claimed'], 'g / 10')} END",
                "points_spent": f"CASE WHEN {award} THEN 0 ELSE t.points_spent END",
                "ledger_entry_id": f"CASE WHEN {award} THEN NULL ELSE t.ledger_entry_id END",
                "status": pick(["pending"] * 5 + ["processing", "completed", "completed", "completed", "canceled"]),
                "approval_status": "CASE WHEN g % 5000 = 0 THEN 'submitted' END",
                "created_at": spread(hi),
                "updated_at": spread(hi),
            },
        ),
        "codes": (
            "promotions_code",
            {
                "code": "'BENCH' || lpad(g::text, 9, '0')",
                "normalized": "'BENCH' || lpad(g::text, 9, '0')",
                "status": pick(["active"] * 7 + ["redeemed", "redeemed", "void"]),
                "created_at": spread(hi),
                "updated_at": spread(hi),
            },
        ),
        "transactions": (
            "loyalty_transaction",
            {
                "external_id": "'T-' || g",
                "member_id": f"CASE WHEN g % 3 = 0 THEN NULL ELSE {member} END",
                "points_earned": "CASE WHEN g % 3 = 0 THEN 0 ELSE t.points_earned END",
                "processed_at": f"CASE WHEN g % 3 = 0 THEN NULL ELSE {spread(hi)} END",
                "occurred_at": spread(hi),
                "created_at": spread(hi),
                "store": "'S' || g % 40",
            },
        ),
    }
    template = {"ledger": "entry", "redemptions": "redemption", "codes": "code", "transactions": "transaction"}
    for kind in kinds:
        table, overrides = specs[kind]
        common.clone_rows(table, t[template[kind]], source=series, overrides=overrides)
    common.analyze()
    return time.perf_counter() - t0


def measure(client, runs: int) -> dict[tuple[str, str], tuple[float, int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    out = {}
    for name, view, path in PAGES:
        response = client.get(path)  # warm up
        assert response.status_code == 200, (path, response.status_code)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - t0)
        with CaptureQueriesContext(connection) as ctx:
            client.get(path)
        slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
        ms, queries = common.median_ms(times), len(ctx.captured_queries)
        out[(name, view)] = (ms, queries, float(slowest["time"]) * 1000, " ".join(slowest["sql"].split())[:400])
        common.log(f"  {name:<13} {view:<26} {ms:7.1f} ms  {queries:3d} queries; slowest {out[(name, view)][2]:.0f} ms")
    return out


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], rows=0, small=0, runs=0)
    rows = common.size(args, "rows", 1_000_000, 20_000)
    small = common.size(args, "small", 10_000, 2_000)
    runs = common.size(args, "runs", 7, 3)
    with common.fresh_database("admin"):
        from django.test import Client

        t = templates()
        client = Client()
        client.force_login(common.superuser())
        common.log(f"loading {small:,} rows per list")
        load(t, 1, small)
        at_small = measure(client, runs)
        common.log(f"loading up to {rows:,} rows per list")
        seconds = load(t, small + 1, rows)
        common.log(f"  loaded in {seconds:.0f} s")
        at_big = measure(client, runs)

    out = []
    for (name, view), (ms, queries, slowest_ms, slowest_sql) in at_big.items():
        small_ms, small_queries, _, _ = at_small[(name, view)]
        bounded = queries <= small_queries  # fewer is fine: e.g. no exact count on a big table
        out.append(
            Row(
                "admin",
                f"admin {name} list, {view}",
                f"{ms:.0f} ms, {queries} queries at {rows:,} rows",
                limit=f"{small_ms:.0f} ms, {small_queries} queries at {small:,}",
                target=f"< {TARGET_MS} ms, queries do not grow",
                met=ms < TARGET_MS and bounded,
                details={
                    "rows": rows,
                    "ms": ms,
                    "queries": queries,
                    "small_rows": small,
                    "small_ms": small_ms,
                    "small_queries": small_queries,
                    "slowest_query_ms": slowest_ms,
                    "slowest_query": slowest_sql,
                },
            )
        )
    common.emit(args, out)


if __name__ == "__main__":
    main()
