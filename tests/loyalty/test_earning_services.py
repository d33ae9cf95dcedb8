import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from loyalty import services
from loyalty.exceptions import AlreadyExists, Conflict, DomainError, InvalidInput, MemberInactive
from loyalty.kernel import SYSTEM
from loyalty.models import (
    LedgerEntry,
    Metric,
    PointBalance,
    Rule,
    RuleSet,
    RuleSetImmutableError,
    TierMembership,
    Transaction,
)
from loyalty.selectors import rule_set_at, tier_at, verify_ledger
from tests.helpers import BY_TIER, FIXED, d

UTC = dt.UTC


@pytest.fixture
def published(db, metric, tiers, admin_user):
    """The seed's two sets: Set 2 (2023-01-01..06-30, 98 points) and Set 3 (07-01..08-31, 89 points)."""
    with time_machine.travel(d(2022, 12, 1), tick=False):
        set2 = services.create_rule_set(
            name="Set 2",
            valid_from=d(2023, 1, 1),
            valid_to=d(2023, 7, 1),
            rules=[{**FIXED, "points": 98}],
            actor=admin_user,
        )
        set3 = services.create_rule_set(
            name="Set 3",
            valid_from=d(2023, 7, 1),
            valid_to=d(2023, 9, 1),
            rules=[{**FIXED, "points": 89}],
            actor=admin_user,
        )
        services.publish_rule_set(rule_set=set2, actor=admin_user)
        services.publish_rule_set(rule_set=set3, actor=admin_user)
    return set2, set3


def bill(external_id, when, amount="100.00", member=None, **kw):
    kw.setdefault("actor", SYSTEM)
    return services.record_transaction(
        external_id=external_id, occurred_at=when, amount=Decimal(amount), currency="EUR", member=member, **kw
    )


@pytest.mark.django_db
def test_point_in_time_rules_a_may_purchase_processed_in_august_earns_by_set_2(published, member):
    with time_machine.travel(d(2023, 8, 17, 10), tick=False):
        txn = bill("B-1", d(2023, 5, 20, 15), member=member)
    assert txn.points_earned == 98
    assert txn.breakdown["rule_set"]["name"] == "Set 2"
    entry = LedgerEntry.objects.get(source_type="transaction", source_id="B-1")
    assert entry.amount == 98 and entry.breakdown["rules"][0]["points"] == 98
    assert entry.effective_at == d(2023, 5, 20, 15) and entry.created_at == d(2023, 8, 17, 10)


@pytest.mark.django_db
def test_valid_to_is_exclusive_and_the_switch_instant_uses_the_new_set(published, member):
    with time_machine.travel(d(2023, 8, 17), tick=False):
        before = bill("B-1", d(2023, 6, 30, 23, 59, 59), member=member)
        at_switch = bill("B-2", d(2023, 7, 1), member=member)
    assert (before.points_earned, at_switch.points_earned) == (98, 89)
    assert rule_set_at(d(2023, 9, 1)) is None


@pytest.mark.django_db
def test_a_bill_at_2330_local_on_june_30_is_june_30(settings, metric, tiers, admin_user):
    settings.TIME_ZONE = "Europe/Paris"
    paris = ZoneInfo("Europe/Paris")
    with time_machine.travel(d(2022, 12, 1), tick=False):
        june = services.create_rule_set(
            name="June",
            valid_from=dt.datetime(2023, 6, 1, tzinfo=paris),
            valid_to=dt.datetime(2023, 7, 1, tzinfo=paris),
            rules=[{**FIXED, "points": 98}],
            actor=admin_user,
        )
        july = services.create_rule_set(
            name="July",
            valid_from=dt.datetime(2023, 7, 1, tzinfo=paris),
            rules=[{**FIXED, "points": 89}],
            actor=admin_user,
        )
        services.publish_rule_set(rule_set=june, actor=admin_user)
        services.publish_rule_set(rule_set=july, actor=admin_user)
    member = services.enroll_member(external_id="P-1", enrolled_at=d(2023, 1, 1), actor=SYSTEM)
    with time_machine.travel(d(2023, 8, 1), tick=False):
        late_evening = bill("B-1", dt.datetime(2023, 6, 30, 23, 30, tzinfo=paris), member=member)
    # 23:30 in Paris is 21:30 UTC: June 30, under the June set.
    assert late_evening.occurred_at == d(2023, 6, 30, 21, 30)
    assert late_evening.points_earned == 98


@pytest.mark.django_db
def test_tier_at_the_purchase_date_decides_the_percentage(metric, tiers, admin_user, support_user):
    with time_machine.travel(d(2023, 1, 1), tick=False):
        rules = services.create_rule_set(name="Tiers", valid_from=d(2023, 1, 1), rules=[BY_TIER], actor=admin_user)
        services.publish_rule_set(rule_set=rules, actor=admin_user)
        member = services.enroll_member(external_id="S-1", tier=tiers["SILVER"], actor=SYSTEM)
    with time_machine.travel(d(2023, 8, 10), tick=False):
        services.change_tier(member=member, tier=tiers["GOLD"], actor=support_user, reason="big purchase")
    with time_machine.travel(d(2023, 8, 17), tick=False):
        txn = bill("B-1", d(2023, 5, 20), amount="200.00", member=member)
        now_bill = bill("B-2", d(2023, 8, 17), amount="200.00", member=member)
    assert txn.points_earned == 30 and txn.breakdown["tier"] == "SILVER"  # 15% of 200
    assert now_bill.points_earned == 40 and now_bill.breakdown["tier"] == "GOLD"


@pytest.mark.django_db
def test_published_sets_are_immutable_everywhere(published, admin_user):
    set2, _ = published
    set2.name = "renamed"
    with pytest.raises(RuleSetImmutableError):
        set2.save()
    rule = Rule.objects.get(rule_set=set2)
    rule.points = 1000
    with pytest.raises(RuleSetImmutableError):
        rule.save()
    with pytest.raises(RuleSetImmutableError):
        rule.delete()
    with pytest.raises(Conflict) as exc:
        services.update_rule_set(rule_set=set2, actor=admin_user, name="x")
    assert exc.value.code == "rule_set_published"
    assert Rule.objects.get(pk=rule.pk).points == 98


@pytest.mark.django_db
def test_overlapping_publication_is_refused(published, admin_user):
    with time_machine.travel(d(2022, 12, 2), tick=False):
        clash = services.create_rule_set(
            name="Summer",
            valid_from=d(2023, 6, 15),
            valid_to=d(2023, 7, 15),
            rules=[{**FIXED, "points": 5}],
            actor=admin_user,
        )
        with pytest.raises(Conflict) as exc:
            services.publish_rule_set(rule_set=clash, actor=admin_user)
    assert exc.value.code == "rule_set_overlap"
    clash.refresh_from_db()
    assert clash.status == RuleSet.Status.DRAFT


@pytest.mark.django_db
def test_new_version_closes_its_predecessor_and_never_rewrites_the_past(metric, tiers, admin_user):
    with time_machine.travel(d(2023, 1, 1), tick=False):
        v1 = services.create_rule_set(
            name="Base", valid_from=d(2023, 1, 1), rules=[{**FIXED, "points": 10}], actor=admin_user
        )
        services.publish_rule_set(rule_set=v1, actor=admin_user)
    with time_machine.travel(d(2023, 3, 1), tick=False):
        backdated = services.new_rule_set_version(rule_set=v1, actor=admin_user, valid_from=d(2023, 2, 1))
        with pytest.raises(DomainError) as exc:
            services.publish_rule_set(rule_set=backdated, actor=admin_user)
        assert exc.value.code == "rule_set_rewrites_past"
        v2 = services.new_rule_set_version(rule_set=v1, actor=admin_user, valid_from=d(2023, 4, 1))
        services.update_rule_set(rule_set=v2, actor=admin_user, rules=[{**FIXED, "points": 20}])
        services.publish_rule_set(rule_set=v2, actor=admin_user)
    v1.refresh_from_db()
    assert (v2.version, v1.valid_to) == (3, d(2023, 4, 1))
    assert rule_set_at(d(2023, 3, 31)) == v1 and rule_set_at(d(2023, 4, 1)) == v2
    # a fresh window in the past is fine where nothing was in force
    with time_machine.travel(d(2023, 3, 1), tick=False):
        old = services.create_rule_set(
            name="2022",
            valid_from=d(2022, 1, 1),
            valid_to=d(2023, 1, 1),
            rules=[{**FIXED, "points": 1}],
            actor=admin_user,
        )
        services.publish_rule_set(rule_set=old, actor=admin_user)
    assert rule_set_at(d(2022, 6, 1)) == old


@pytest.mark.django_db
def test_crossing_a_threshold_upgrades_from_now_and_past_purchases_keep_their_tier(metric, tiers, admin_user):
    with time_machine.travel(d(2024, 1, 1), tick=False):
        rules = services.create_rule_set(name="Tiers", valid_from=d(2024, 1, 1), rules=[BY_TIER], actor=admin_user)
        services.publish_rule_set(rule_set=rules, actor=admin_user)
        member = services.enroll_member(external_id="U-1", actor=SYSTEM)
    with time_machine.travel(d(2024, 3, 1), tick=False):
        first = bill("B-1", d(2024, 3, 1), amount="400.00", member=member)
    member.refresh_from_db()
    assert member.tier.code == "BRONZE" and first.points_earned == 40
    with time_machine.travel(d(2024, 3, 2), tick=False):
        bill("B-2", d(2024, 3, 2), amount="150.00", member=member)  # spend 550 >= 500: SILVER from now
    member.refresh_from_db()
    assert member.tier.code == "SILVER"
    upgrade = TierMembership.objects.get(member=member, tier__code="SILVER")
    assert upgrade.valid_from == d(2024, 3, 2) and upgrade.cause == "qualification"
    assert tier_at(member, d(2024, 3, 1)).code == "BRONZE"
    first.refresh_from_db()
    assert first.points_earned == 40  # never recomputed


@pytest.mark.django_db
def test_trackers_count_at_processing_time_not_bill_date(published, member):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        bill("OLD", d(2023, 12, 30), amount="100.00", member=member)
    tracker = member.trackers.get()
    assert tracker.period_start == d(2024, 1, 1) and tracker.spend == Decimal("100.00") and tracker.purchases == 1


@pytest.mark.django_db
def test_period_end_requalification_moves_members_down(metric, tiers, admin_user):
    with time_machine.travel(d(2024, 1, 1), tick=False):
        member = services.enroll_member(external_id="Q-1", actor=SYSTEM)
    with time_machine.travel(d(2024, 5, 1), tick=False):
        bill("B-1", d(2024, 5, 1), amount="2500.00", member=member)
    member.refresh_from_db()
    assert member.tier.code == "GOLD"
    with time_machine.travel(d(2025, 1, 2), tick=False):
        assert services.requalify_tiers() == 0  # 2024 spend still qualifies for 2025
    with time_machine.travel(d(2025, 6, 1), tick=False):
        bill("B-2", d(2025, 6, 1), amount="600.00", member=member)
    with time_machine.travel(d(2026, 1, 2), tick=False):
        assert services.requalify_tiers() == 1
        assert services.requalify_tiers() == 0
    member.refresh_from_db()
    assert member.tier.code == "SILVER"
    assert TierMembership.objects.get(member=member, valid_to__isnull=True).cause == "requalification"


@pytest.fixture
def percent_rules(metric, tiers, admin_user):
    with time_machine.travel(d(2024, 1, 1), tick=False):
        rules = services.create_rule_set(name="Tiers", valid_from=d(2024, 1, 1), rules=[BY_TIER], actor=admin_user)
        services.publish_rule_set(rule_set=rules, actor=admin_user)
        return services.enroll_member(external_id="R-1", actor=SYSTEM)


@pytest.mark.django_db
def test_full_and_partial_returns_take_back_exactly_what_was_earned(percent_rules):
    member = percent_rules
    with time_machine.travel(d(2024, 2, 1), tick=False):
        txn = bill("R-1", d(2024, 2, 1), amount="155.00", member=member)  # 10% -> 15
        assert txn.points_earned == 15
        first = services.return_transaction(transaction_=txn, amount="50.00", reason="one item", actor=SYSTEM)
        assert first.points_reversed == 4  # floor(15 * 50/155) = 4
        second = services.return_transaction(transaction_=txn, reason="rest", actor=SYSTEM)
        assert second.points_reversed == 11 and second.amount == Decimal("105.00")
        with pytest.raises(Conflict) as exc:
            services.return_transaction(transaction_=txn, amount="1.00", actor=SYSTEM)
        assert exc.value.code == "already_returned"
    assert PointBalance.objects.get(member=member).balance == 0
    assert verify_ledger().ok


@pytest.mark.django_db
def test_return_beyond_the_amount_is_refused(percent_rules):
    member = percent_rules
    with time_machine.travel(d(2024, 2, 1), tick=False):
        txn = bill("R-1", d(2024, 2, 1), amount="100.00", member=member)
        with pytest.raises(Conflict) as exc:
            services.return_transaction(transaction_=txn, amount="100.01", actor=SYSTEM)
    assert exc.value.code == "return_exceeds_amount"
    assert not LedgerEntry.objects.filter(kind="return").exists()


@pytest.mark.django_db
def test_spent_points_become_debt_that_the_next_purchase_repays_first(percent_rules):
    member = percent_rules
    metric = Metric.objects.get(code="points")
    with time_machine.travel(d(2024, 2, 1), tick=False):
        txn = bill("R-1", d(2024, 2, 1), amount="400.00", member=member)  # 40 points
        services.debit_points(member=member, metric=metric, amount=35, actor=SYSTEM)
        ret = services.return_transaction(transaction_=txn, reason="returned", actor=SYSTEM)
    assert (ret.points_reversed, ret.debt_created) == (40, 35)
    balance = PointBalance.objects.get(member=member)
    assert (balance.balance, balance.debt) == (0, 35)
    assert verify_ledger().ok
    with time_machine.travel(d(2024, 2, 5, 12), tick=False):
        bill("R-2", d(2024, 2, 5), amount="200.00", member=member)  # 20 points, all to the debt
        balance.refresh_from_db()
        assert (balance.balance, balance.debt) == (0, 15)
        bill("R-3", d(2024, 2, 5, 1), amount="200.00", member=member)  # 20 points: 15 debt, 5 spendable
    balance.refresh_from_db()
    assert (balance.balance, balance.debt) == (5, 0)
    report = verify_ledger()
    assert report.ok, report.problems


@pytest.mark.django_db
def test_pending_points_activate_after_the_return_window_and_returns_cancel_them_first(percent_rules):
    member = percent_rules
    metric = Metric.objects.get(code="points")
    Metric.objects.filter(pk=metric.pk).update(pending_days=14)
    with time_machine.travel(d(2024, 2, 1), tick=False):
        services.credit_points(member=member, metric=metric, amount=100, actor=SYSTEM)  # older spendable points
        txn = bill("P-1", d(2024, 2, 1), amount="300.00", member=member)  # 30 pending
        balance = PointBalance.objects.get(member=member)
        assert (balance.balance, balance.pending) == (100, 30)
        services.return_transaction(transaction_=txn, amount="100.00", actor=SYSTEM)  # 10 back, from the pending lot
        balance.refresh_from_db()
        assert (balance.balance, balance.pending) == (100, 20)
    with time_machine.travel(d(2024, 2, 15), tick=False):
        assert services.activate_pending_points() == 1
    balance.refresh_from_db()
    assert (balance.balance, balance.pending) == (120, 0)
    assert verify_ledger().ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value", [("amount", "-5"), ("amount", "abc"), ("amount", "1e30"), ("amount", "10.001"), ("currency", "XXX")]
)
def test_bad_purchases_write_nothing(percent_rules, field, value):
    member = percent_rules
    kwargs = {
        "external_id": "BAD",
        "occurred_at": d(2024, 2, 1),
        "amount": "10.00",
        "currency": "EUR",
        "member": member,
        "actor": SYSTEM,
        field: value,
    }
    with time_machine.travel(d(2024, 2, 2), tick=False), pytest.raises(InvalidInput) as exc:
        services.record_transaction(**kwargs)
    assert field in exc.value.errors
    assert not Transaction.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_future_duplicate_and_inactive_member_purchases_are_refused(percent_rules, support_user):
    member = percent_rules
    with time_machine.travel(d(2024, 2, 1), tick=False):
        with pytest.raises(InvalidInput):
            bill("F-1", d(2024, 2, 1, 0, 10), member=member)
        bill("F-1", d(2024, 2, 1, 0, 4), member=member)  # within the clock tolerance
        with pytest.raises(AlreadyExists):
            bill("F-1", d(2024, 1, 31), member=member)
        services.update_member(member=member, actor=support_user, status="suspended", reason="check")
        member.refresh_from_db()
        with pytest.raises(MemberInactive):
            bill("F-2", d(2024, 1, 31), member=member)
    assert Transaction.objects.count() == 1 and LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_non_loyalty_purchase_is_stored_without_points(percent_rules):
    with time_machine.travel(d(2024, 2, 1), tick=False):
        txn = bill("N-1", d(2024, 1, 20))
    assert txn.member is None and txn.points_earned == 0 and txn.processed_at is None
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_program_settings_change_through_the_service_with_history(campaign_manager_user, support_user):
    from loyalty.exceptions import PermissionRequired
    from loyalty.models import ProgramSettings

    with pytest.raises(PermissionRequired):
        services.update_program_settings(actor=support_user, retro_enabled=True)
    with pytest.raises(InvalidInput) as exc:
        services.update_program_settings(actor=campaign_manager_user, rollback_approval_reasons=["whim"])
    assert "rollback_approval_reasons" in exc.value.errors
    with pytest.raises(InvalidInput):
        services.update_program_settings(actor=campaign_manager_user, no_such_setting=1)
    program = services.update_program_settings(
        actor=campaign_manager_user, reason="enable retro", retro_enabled=True, retro_window_days=60
    )
    assert ProgramSettings.load().retro_window_days == 60 and program.retro_enabled
    last = program.history.latest("history_date")
    assert last.history_user == campaign_manager_user and last.history_change_reason == "enable retro"
