"""Dashboard row: the report behind the dashboard at 1,000,000 redemptions, and the member search
at 1,000,000 members.

One fresh database. Template rows come from the real services (a member enrolled and credited, a
badge redeemed and rolled back, a campaign with a code, a purchase) or, for a code use, one ORM row;
clone_rows copies them with SQL (generate_series): --rows members (each with a balance, a credit
and its lot expiring over the next year), --rows redemptions over the last year (every tenth an
award), one rollback per 50 redemptions (reasons and requesters cycling, every 500th waiting),
--rows codes in 20 campaigns, a code use per 10 codes and --rows purchases.

Measured in this process (server time, no network; the median of --runs):
  rollup:           the daily rollup's catch-up (every closed day of the last 400 computed and
                    stored, as the first report or the beat job does once), timed once
  report, computed: loyalty.insight.report.build_summary for the last 30 days (the cache bypassed;
                    the closed days from the rollup, today live); once fully live for comparison
  report, cached:   GET /api/v1/reports/summary/ as the approver would get it within 5 minutes
  dashboard page:   /admin/dashboard/ (a 30- and a 365-day range, cache bypassed and cached)
  home page:        /admin/ as a superuser (queues + last 30 days)
  member search:    the admin member list with ?q= for a partial name, an email part, phone digits
                    and a lower-case customer id (the list's count and first page)

    python -m bench.dashboard [--quick] [--rows 1000000] [--runs 7] [--reuse DBNAME]

--reuse measures again on a database an earlier run kept (BENCH_KEEP_DB=1): it is migrated to
the current code (new indexes) and not loaded again, so a change can be measured in minutes.
Targets: report < 500 ms, search < 200 ms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import common
from bench.common import Row

REPORT_TARGET_MS = 500
SEARCH_TARGET_MS = 200


# Cloned members get varied, realistic names (47 × 53 combinations, each ~400 times at 1M) so a
# trigram search measures what users see, not a name every member shares ("Member N").
FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "William",
    "Mia",
    "Benjamin",
    "Charlotte",
    "Lucas",
    "Harper",
    "Henry",
    "Evelyn",
    "Theodore",
    "Abigail",
    "Jack",
    "Emily",
    "Levi",
    "Ella",
    "Alexander",
    "Elizabeth",
    "Jackson",
    "Camila",
    "Mateo",
    "Luna",
    "Daniel",
    "Sofia",
    "Michael",
    "Avery",
    "Mason",
    "Mila",
    "Sebastian",
    "Aria",
    "Ethan",
    "Scarlett",
    "Logan",
    "Penelope",
    "Owen",
    "Layla",
    "Samuel",
    "Chloe",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kowalski",
    "Novak",
    "Dubois",
    "Rossi",
]


def spread(hi: int, expr: str = "g") -> str:
    """created_at over the last year, newest for the highest g."""
    return f"now() - make_interval(secs => ({hi} - {expr}) * 31536000.0 / {hi})"


def pick(values: list[str], expr: str = "g") -> str:
    array = ", ".join(f"'{v}'" for v in values)
    return f"(ARRAY[{array}])[1 + ({expr}) % {len(values)}]"


def load(rows: int) -> dict:
    from decimal import Decimal

    from django.contrib.auth.models import User

    from loyalty import services as loyalty
    from loyalty.models import ProgramSettings, Reward
    from promotions import services as promotions
    from promotions.models import Code, CodeRedemption
    from redemptions import services as redemptions
    from redemptions.models import Rollback

    boss = common.superuser()
    helpers = [User.objects.create(username=f"agent{i}", is_staff=True) for i in range(5)]
    ProgramSettings.objects.get_or_create(pk=1)
    t0 = time.perf_counter()
    member = common.member_with_points("M-0", 1000, actor=boss, email="m0@example.com", name="Member 0")
    reward = Reward.objects.create(external_id="BADGE", name="Badge", type="badge", metric=common.metric(), points=10)
    redemption = redemptions.redeem_reward(member=member, reward=reward, actor=boss)
    undone = redemptions.redeem_reward(member=member, reward=reward, actor=boss)
    rollback = redemptions.rollback_redemption(redemption=undone, reason="customer_request", actor=boss)
    assert rollback.status == Rollback.Status.EXECUTED
    campaign = promotions.create_campaign(actor=boss, name="Bench 0", kind="fixed_discount", value=5)
    batch = promotions.create_code_batch(campaign=campaign, actor=boss, count=1, length=10)
    promotions.generate_code_batch(batch_id=batch.pk)
    code = Code.objects.get(batch=batch)
    use = CodeRedemption.objects.create(
        code=code,
        campaign=campaign,
        member=member,
        order_id="T-1",
        order_amount=Decimal("40.00"),
        discount=Decimal("5.00"),
        redeemed_by=boss,
    )
    bill = loyalty.record_transaction(
        external_id="T-0", occurred_at=member.enrolled_at, amount="25.00", currency="EUR", member=member, actor=boss
    )
    for i in range(1, 20):
        promotions.create_campaign(actor=boss, name=f"Bench {i}", kind="fixed_discount", value=5)
    campaigns = common.sql("SELECT min(id), count(*) FROM promotions_campaign")[0]

    # Members with a balance, a credit and a lot each; a phone to search by.
    given, family = pick(FIRST_NAMES), pick(LAST_NAMES, f"g / {len(FIRST_NAMES)}")
    first, last = common.clone_members(
        member,
        "M-",
        rows,
        extra={
            "phone": "'+44700' || lpad(g::text, 7, '0')",
            "name": f"{given} || ' ' || {family}",
            "email": f"lower({given}) || '.' || lower({family}) || g || '@example.com'",
        },
        # The credits spread over the last year like everything else (not all dated today).
        entries={"created_at": "now() - make_interval(secs => (m.id % 365) * 86400.0 + m.id % 86400)"},
    )
    common.sql(
        "UPDATE loyalty_pointlot SET expires_at = now() + make_interval(days => (1 + member_id %% 365)::int)"
        " WHERE member_id BETWEEN %s AND %s",
        [first, last],
    )
    common.log(f"  {rows:,} members with balances, entries and lots ({time.perf_counter() - t0:.0f} s)")
    who = f"{first} + (g::bigint * 7919) % {rows}"
    award = "g % 10 = 0"
    common.clone_rows(
        "redemptions_redemption",
        redemption.pk,
        source=f"generate_series(1, {rows}) g",
        overrides={
            "member_id": who,
            "kind": f"CASE WHEN {award} THEN 'award' ELSE 'redemption' END",
            "award_status": f"CASE WHEN {award} THEN 'awarded' END",
            "points_spent": f"CASE WHEN {award} THEN 0 ELSE t.points_spent END",
            "ledger_entry_id": f"CASE WHEN {award} THEN NULL ELSE t.ledger_entry_id END",
            "approval_status": "CASE WHEN g % 5000 = 0 THEN 'submitted' END",
            "created_at": spread(rows),
            "updated_at": spread(rows),
        },
    )
    lo = common.sql("SELECT min(id) FROM redemptions_redemption WHERE id > %s", [undone.pk])[0][0]
    n_rollbacks = rows // 50
    staff = ", ".join(str(u.pk) for u in [boss, *helpers])
    common.clone_rows(
        "redemptions_rollback",
        rollback.pk,
        source=f"generate_series(1, {n_rollbacks}) g",
        overrides={
            "redemption_id": f"{lo} + g * 50 - 1",
            "member_id": f"(SELECT member_id FROM redemptions_redemption WHERE id = {lo} + g * 50 - 1)",
            "reason": pick(["customer_request", "customer_request", "technical_error", "fraud", "other"]),
            "status": "CASE WHEN g % 500 = 0 THEN 'pending_approval' ELSE 'executed' END",
            "requested_by_id": f"(ARRAY[{staff}])[1 + g % 6]",
            "created_at": spread(n_rollbacks),
            "updated_at": spread(n_rollbacks),
        },
    )
    common.log(f"  {rows:,} redemptions, {n_rollbacks:,} rollbacks ({time.perf_counter() - t0:.0f} s)")
    common.clone_rows(
        "promotions_code",
        code.pk,
        source=f"generate_series(1, {rows}) g",
        overrides={
            "campaign_id": f"{campaigns[0]} + g % {campaigns[1]}",
            "code": "'BENCH' || lpad(g::text, 9, '0')",
            "normalized": "'BENCH' || lpad(g::text, 9, '0')",
            "uses": "CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END",
            "status": "CASE WHEN g % 10 = 0 THEN 'redeemed' ELSE 'active' END",
            "created_at": spread(rows),
            "valid_from": spread(rows),
        },
    )
    code_lo = common.sql("SELECT min(id) FROM promotions_code WHERE id > %s", [code.pk])[0][0]
    common.clone_rows(
        "promotions_coderedemption",
        use.pk,
        source=f"generate_series(1, {rows // 10}) g",
        overrides={
            "code_id": f"{code_lo} + g * 10 - 1",
            "campaign_id": f"{campaigns[0]} + (g * 10) % {campaigns[1]}",
            "member_id": who,
            "order_id": "'T-' || (g * 3)",
            "order_amount": "20 + g % 80",
            "created_at": f"{spread(rows, 'g * 10')} + interval '3 hours'",
        },
    )
    common.clone_rows(
        "loyalty_transaction",
        bill.pk,
        source=f"generate_series(1, {rows}) g",
        overrides={
            "external_id": "'T-' || g",
            "member_id": f"CASE WHEN g % 3 = 0 THEN NULL ELSE {who} END",
            "amount": "10 + g % 90",
            "occurred_at": spread(rows),
            "created_at": spread(rows),
        },
    )
    common.log(f"  {rows:,} codes, {rows // 10:,} code uses, {rows:,} purchases ({time.perf_counter() - t0:.0f} s)")
    settle()
    return {"first_member": first}


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return common.median_ms(times)


def settle() -> None:
    """VACUUM (ANALYZE): statistics, and the visibility map autovacuum keeps in a live database
    (index-only scans of the append-only ledger depend on it)."""
    common.sql("VACUUM (ANALYZE)")


@contextmanager
def database(reuse: str | None) -> Iterator[None]:
    """A fresh database (loaded by the caller), or a kept one migrated to the current code."""
    if not reuse:
        with common.fresh_database("dashboard"):
            yield
        return
    common.setup_django(reuse)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settle()
    yield


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], rows=0, runs=0, reuse="")
    rows = common.size(args, "rows", 1_000_000, 5_000)
    runs = common.size(args, "runs", 7, 3)
    out: list[Row] = []
    with database(args.reuse):
        from django.core.cache import cache
        from django.test import Client

        from loyalty import selectors
        from loyalty.insight import Period, report
        from loyalty.models import Member
        from redemptions.models import Redemption

        if args.reuse:
            rows = Member.objects.filter(external_id__startswith="M-").count() - 1
            common.log(f"reusing {args.reuse}: {rows:,} members")
        else:
            common.log(f"loading {rows:,} rows of each kind")
            load(rows)
        have = Redemption.objects.count()
        admin = Client()
        admin.force_login(common.superuser())

        def get(path: str):
            response = admin.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        from loyalty.insight import rollup
        from loyalty.models import DailyFigure, InsightDay
        from loyalty.services import insight as rollup_service

        month, year = Period.last_days(30), Period.last_days(365)
        if not args.reuse or not InsightDay.objects.exists():
            t0 = time.perf_counter()
            closed = rollup_service.close_recent_days()
            ms = (time.perf_counter() - t0) * 1000
            common.log(f"  rollup catch-up: {closed} days, {DailyFigure.objects.count()} figures, {ms:.0f} ms")
            out.append(Row("dashboard", f"rollup catch-up, {closed} days", f"{ms:.0f} ms", details={"ms": ms}))
        for label, period in (("30", month), ("365", year)):
            with rollup.computed_live():
                ms = timed(lambda p=period: report.build_summary(p), 1)
            common.log(f"  report, fully live ({label} days, no rollup)   {ms:8.1f} ms")
        for figures in report.registered_figures():
            ms = timed(lambda f=figures: f.compute(month), runs)
            common.log(f"    section {figures.key:<20} {ms:8.1f} ms")
        api_path = f"/api/v1/reports/summary/?from={month.start}&to={month.end}"
        measures = [
            ("report, computed (30 days)", lambda: report.build_summary(month), REPORT_TARGET_MS),
            ("report, computed (365 days)", lambda: report.build_summary(year), REPORT_TARGET_MS),
            ("GET /reports/summary/, cached", lambda: get(api_path), REPORT_TARGET_MS),
            ("dashboard page (30 days), computed", lambda: (cache.clear(), get("/admin/dashboard/")), REPORT_TARGET_MS),
            ("dashboard page (30 days), cached", lambda: get("/admin/dashboard/"), REPORT_TARGET_MS),
            ("home page, computed", lambda: (cache.clear(), get("/admin/")), REPORT_TARGET_MS),
        ]
        get(api_path)
        for name, fn, target in measures:
            ms = timed(fn, runs)
            common.log(f"  {name:<40} {ms:8.1f} ms")
            out.append(
                Row(
                    "dashboard",
                    f"{name}, {have:,} redemptions",
                    f"{ms:.0f} ms",
                    target=f"< {target} ms",
                    met=ms < target,
                    details={"redemptions": have, "ms": ms},
                )
            )
        n = rows // 2 + 7
        someone = Member.objects.get(external_id=f"M-{n}")
        terms = [
            ("partial name", someone.name[1:-2]),
            ("email part", someone.email.split("@")[0][2:] + "@exa"),
            ("phone digits", f"44700{n:07d}"),
            ("customer id, lower case", f"m-{n}"),
        ]
        for label, term in terms:
            path = f"/admin/loyalty/member/?q={term.replace(' ', '+').replace('@', '%40')}"
            found = selectors.search_members(Member.objects.all(), term).count()
            ms = timed(lambda p=path: get(p), runs)
            common.log(f"  search {label:<28} {term!r:<22} {found:>4} found {ms:8.1f} ms")
            out.append(
                Row(
                    "dashboard",
                    f"member search: {label}, {rows:,} members",
                    f"{ms:.0f} ms ({found} found)",
                    target=f"< {SEARCH_TARGET_MS} ms",
                    met=ms < SEARCH_TARGET_MS,
                    details={"members": rows, "term": term, "found": found, "ms": ms},
                )
            )
    common.emit(args, out)


if __name__ == "__main__":
    main()
