import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.test import override_settings

from loyalty import outbox
from loyalty.exceptions import InvalidInput, TooManyAttempts
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, OutboxMessage, PointBalance, Segment
from loyalty.selectors import verify_ledger
from promotions import codegen, services
from promotions.models import AbuseSignal, Campaign, Code, CodeBatch, CodeEvent, CodeRedemption
from promotions.selectors import code_timeline

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def req(codes, member=None, amount="100.00", client="pos-1", ip="10.0.0.1", channel="online"):
    return services.clean_request(
        codes=codes, member=member, order={"id": "o-1", "amount": amount, "channel": channel}, client=client, ip=ip
    )


@pytest.mark.django_db
def test_generation_makes_unique_lookalike_free_codes_with_release(
    make_campaign, manager, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.create_code_batch(
            campaign=campaign, actor=manager, count=500, pattern="SPR-****-****", release_at=NOW
        )
    batch.refresh_from_db()
    assert (batch.status, batch.generated) == ("completed", 500)
    codes = list(Code.objects.filter(batch=batch).values_list("code", "normalized", "valid_from"))
    assert len({n for _, n, _ in codes}) == 500
    assert all(c.startswith("SPR-") and len(c) == 13 for c, _, _ in codes)
    assert all(ch not in "01OIL" for _, n, _ in codes for ch in n[3:])
    assert all(v == NOW for _, _, v in codes)


@pytest.mark.django_db
def test_generation_resumes_and_fills_up_to_the_count(make_campaign, manager, django_capture_on_commit_callbacks):
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=False):
        batch = services.create_code_batch(campaign=campaign, actor=manager, count=250, length=12)
    services.generate_code_batch(batch_id=batch.pk, chunk_size=100)
    batch.refresh_from_db()
    assert batch.generated == 250 == Code.objects.filter(batch=batch).count()
    services.generate_code_batch(batch_id=batch.pk)  # a duplicate task changes nothing
    assert Code.objects.filter(batch=batch).count() == 250


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"count": 0, "length": 10}, "count"),
        ({"count": 10**9, "length": 10}, "count"),
        ({"count": 100, "pattern": "WELCOME-##"}, "pattern"),  # 64 possible codes: guessable
        ({"count": 10, "pattern": "NOPLACEHOLDERS"}, "pattern"),
        ({"count": 10, "length": 10, "charset": "AA"}, "pattern"),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_written(make_campaign, manager, kwargs, field):
    campaign = make_campaign()
    with pytest.raises(InvalidInput) as exc:
        services.create_code_batch(campaign=campaign, actor=manager, **kwargs)
    assert field in exc.value.errors
    assert not CodeBatch.objects.exists()


def test_normalisation_ignores_case_and_separators():
    assert codegen.normalize("spr-ab cd_ef.gh/2") == "SPRABCDEFGH2"


def test_generated_codes_keep_the_pattern_and_use_every_character_of_each_alphabet():
    pattern = codegen.Pattern.build(pattern="ab-#?*_.##/*")
    codes = codegen.generate(pattern, 3000)
    normalize = codegen.normalizer(pattern)
    assert len(codes) == 3000 and len(set(codes)) > 2990
    for position, ch in enumerate(pattern.text):
        seen = {code[position] for code in codes}
        # 3,000 draws from at most 31 characters miss one with a probability below 1e-40
        assert seen == ({ch} if ch not in codegen.PLACEHOLDERS else set(pattern.alphabet(ch))), (position, ch)
    assert all(normalize(code) == codegen.normalize(code) for code in codes)


@pytest.mark.django_db
def test_a_pattern_with_a_tab_is_copied_row_by_row_and_reads_back_the_same(make_campaign, manager, postgres_only):
    from promotions.services.copy_codes import insert_codes

    campaign = make_campaign()
    batches = [
        services.create_code_batch(campaign=campaign, actor=manager, count=1, pattern=p, release_at=NOW, max_uses=3)
        for p in ("TXT-######", "TAB\t######")
    ]
    for batch, text in zip(batches, ("TXT-123456", "TAB\t123456"), strict=True):
        assert insert_codes(batch, [(f"{text}9", codegen.normalize(f"{text}9"), None)]) == 1
    fields = ("status", "uses", "max_uses", "valid_from", "valid_until", "assigned_member_id", "campaign_id")
    rows = [Code.objects.filter(batch=b, code__endswith="1234569").values(*fields).get() for b in batches]
    assert rows[0] == rows[1]
    assert Code.objects.get(batch=batches[1], code__endswith="1234569").code == "TAB\t1234569"


@pytest.mark.django_db
def test_named_code_is_unique_case_and_separator_insensitive(make_campaign, manager):
    campaign = make_campaign()
    services.create_named_code(campaign=campaign, code="WELCOME-10", actor=manager, max_uses=100)
    with pytest.raises(Exception) as exc:
        services.create_named_code(campaign=campaign, code="welcome10", actor=manager)
    assert getattr(exc.value, "code", None) == "already_exists"


@pytest.mark.django_db
def test_redeem_applies_the_whole_stack_or_nothing(make_campaign, manager, member):
    stack = dict(stacking="stackable", stack_group="spring", max_codes_per_order=2)
    a = services.create_named_code(campaign=make_campaign(name="A", **stack), code="AAA1", actor=manager)
    b = services.create_named_code(campaign=make_campaign(name="B", **stack), code="BBB1", actor=manager)
    services.void_code(code=b, actor=manager, reason="leaked")
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["AAA1", "BBB1"], member), actor=manager)
    assert exc.value.status == 422
    assert [c["reason"] for c in exc.value.errors["codes"]] == [None, "code_void"]
    a.refresh_from_db()
    assert a.uses == 0 and not CodeRedemption.objects.exists()
    assert Campaign.objects.get(name="A").redemptions_count == 0
    # the refused attempt is on the timeline
    assert CodeEvent.objects.filter(code=a, kind="validated", detail__redeem=True).exists()


@pytest.mark.django_db
def test_redeem_counts_uses_limits_and_budgets_and_rollback_frees_the_code(make_campaign, manager, member):
    campaign = make_campaign(kind="fixed_discount", value=5, per_member_limit=1, max_discount_total=100)
    code = services.create_named_code(campaign=campaign, code="FIVE", actor=manager, max_uses=10)
    [use] = services.redeem_codes(req(["five"], member), actor=manager)
    assert use.discount == Decimal("5.00")
    campaign.refresh_from_db()
    assert (campaign.redemptions_count, campaign.discount_total) == (1, Decimal("5.00"))
    evaluation = services.validate_codes(req(["FIVE"], member), actor=manager)
    assert [r.reason for r in evaluation.results] == ["limit_reached"]
    services.rollback_code_redemption(redemption=use, actor=manager, reason="order cancelled")
    code.refresh_from_db()
    campaign.refresh_from_db()
    assert (code.uses, code.status, campaign.redemptions_count, campaign.discount_total) == (0, "active", 0, 0)
    assert [r.reason for r in services.validate_codes(req(["FIVE"], member), actor=manager).results] == [None]
    kinds = [e["kind"] for e in code_timeline(code)]
    assert kinds[:1] == ["generated"] and "redeemed" in kinds and "rolled_back" in kinds


@pytest.mark.django_db
def test_single_use_code_becomes_redeemed_and_is_refused_again(make_campaign, manager, member):
    code = services.create_named_code(campaign=make_campaign(), code="ONCE", actor=manager)
    services.redeem_codes(req(["ONCE"], member), actor=manager)
    code.refresh_from_db()
    assert (code.uses, code.status) == (1, "redeemed")
    with pytest.raises(services.CodesRejected) as exc:
        services.redeem_codes(req(["ONCE"], member), actor=manager)
    assert exc.value.errors["codes"][0]["reason"] == "code_already_used"


@pytest.mark.django_db
def test_bonus_points_codes_credit_the_ledger_and_rollback_takes_them_back(make_campaign, manager, member, metric):
    campaign = make_campaign(kind="bonus_points", value=250, metric=metric)
    services.create_named_code(campaign=campaign, code="BONUS", actor=manager)
    [use] = services.redeem_codes(req(["BONUS"], member), actor=manager)
    assert use.ledger_entry.amount == 250 and use.ledger_entry.source_type == "code_redemption"
    assert PointBalance.objects.get(member=member).balance == 250
    services.rollback_code_redemption(redemption=use, actor=manager, reason="fraud")
    assert PointBalance.objects.get(member=member).balance == 0
    assert LedgerEntry.objects.filter(kind="rollback", amount=-250, reverses=use.ledger_entry).exists()
    assert verify_ledger().ok


@pytest.mark.django_db
@override_settings(CODE_FAILED_VALIDATION_LIMIT=3, CODE_LOCKOUT_SECONDS=60)
def test_brute_force_locks_the_client_out_and_raises_a_signal(make_campaign, manager):
    make_campaign()
    for i in range(3):
        services.validate_codes(req([f"GUESS{i}"], client="bot", ip="6.6.6.6"), actor=manager)
    with pytest.raises(TooManyAttempts) as exc:
        services.validate_codes(req(["GUESS9"], client="bot", ip="6.6.6.6"), actor=manager)
    assert exc.value.status == 429
    signals = AbuseSignal.objects.filter(kind="failed_validations")
    assert {(s.subject_type, s.subject) for s in signals} == {("client", "bot"), ("ip", "6.6.6.6")}
    # another client from another address is not affected
    services.validate_codes(req(["GUESS9"], client="pos-2", ip="10.0.0.2"), actor=manager)


@pytest.mark.django_db
@override_settings(CODE_RAPID_REDEMPTION_LIMIT=3)
def test_a_member_redeeming_many_codes_quickly_is_flagged(make_campaign, manager, member):
    campaign = make_campaign()
    for i in range(3):
        services.create_named_code(campaign=campaign, code=f"FAST{i}", actor=manager)
        services.redeem_codes(req([f"FAST{i}"], member), actor=manager)
    [signal] = AbuseSignal.objects.filter(kind="rapid_redemptions")
    assert signal.subject == str(member.pk) and signal.count == 3


@pytest.mark.django_db
def test_expiry_and_retention_housekeeping(make_campaign, manager):
    campaign = make_campaign()
    code = services.create_named_code(campaign=campaign, code="SOON", actor=manager, valid_until=NOW)
    with time_machine.travel(NOW - dt.timedelta(days=200), tick=False):
        services.validate_codes(req(["SOON"]), actor=manager)
    with time_machine.travel(NOW, tick=False):
        services.validate_codes(req(["SOON"]), actor=manager)
        assert services.expire_codes() == 1
        assert services.purge_code_validations() == 1
    code.refresh_from_db()
    assert code.status == "expired"
    assert CodeEvent.objects.filter(kind="validated").count() == 1


@pytest.mark.django_db
def test_personalised_distribution_assigns_one_code_per_member_and_emails(
    make_campaign, manager, tiers, django_capture_on_commit_callbacks
):
    from loyalty import services as loyalty

    members = [loyalty.enroll_member(external_id=f"S{i}", email=f"s{i}@example.com", actor=SYSTEM) for i in range(5)]
    segment = Segment.objects.create(code="vip", name="VIP")
    segment.members.set(members)
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.create_code_batch(
            campaign=make_campaign(), actor=manager, segment=segment, length=10, email_members=True
        )
    assert sorted(Code.objects.filter(batch=batch).values_list("assigned_member__external_id", flat=True)) == [
        f"S{i}" for i in range(5)
    ]
    assert len(mail.outbox) == 5 and mail.outbox[0].subject == "Your code for Spring sale"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "codes,order",
    [
        ([], {"amount": "1"}),
        (["A"] * 21, {"amount": "1"}),
        ([123], {"amount": "1"}),
        (["A" * 65], {"amount": "1"}),
        (["A"], {"amount": "-1"}),
        (["A"], {"amount": "abc"}),
        (["A"], "not an object"),
    ],
)
def test_bad_code_requests_are_refused(codes, order):
    with pytest.raises(InvalidInput):
        services.clean_request(codes=codes, member=None, order=order)


@pytest.mark.django_db
def test_a_batch_whose_message_was_lost_is_generated_by_the_outbox_sweep(
    make_campaign, manager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the process died right after the commit
        batch = services.create_code_batch(campaign=make_campaign(), actor=manager, count=20, length=10)
    assert OutboxMessage.objects.get().status == "pending"
    outbox.sweep()
    batch.refresh_from_db()
    assert batch.status == "completed" and batch.generated == 20 and Code.objects.filter(batch=batch).count() == 20
    assert OutboxMessage.objects.get().status == "done"


@pytest.mark.django_db
def test_generation_extends_its_outbox_lease_after_every_chunk(make_campaign, manager, monkeypatch):
    """So the sweep never hands a live batch to a second worker (see loyalty.outbox.heartbeat)."""
    beats = []
    monkeypatch.setattr(outbox, "heartbeat", lambda: beats.append(1) or True)
    batch = services.create_code_batch(campaign=make_campaign(), actor=manager, count=35, length=10)
    services.generate_code_batch(batch_id=batch.pk, chunk_size=10)
    assert len(beats) >= 4  # one per chunk of 10
