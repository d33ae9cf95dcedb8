"""The report's figures equal what a person computes by hand on a small fixture (issue 17)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.cache import cache

from loyalty import services as loyalty
from loyalty.insight import Period, report
from loyalty.kernel import SYSTEM
from tests.helpers import BASE, assert_error, d, ok

pytestmark = pytest.mark.django_db

PERIOD = Period(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 10))


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_figures_equal_the_hand_computed_values(figures):
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        data = report.build_summary(PERIOD)
    # Points: Ann 1000 - 2 x 100 + 100 back = 900; Bob 500 - 100 - 100 (March 12th) = 300. Miles apart.
    assert data["liability"] == {
        "miles": {"balance": 300, "pending": 0, "debt": 0},
        "points": {"balance": 1200, "pending": 0, "debt": 0},
    }
    # The miles were credited on March 1st with 20 days to live: inside the next 30 days.
    assert data["expiring_30_days"] == {"miles": 300}
    assert data["redemptions"]["count"] == 3
    assert data["redemptions"]["points"] == {"points": 300}
    assert data["awards"] == {"count": 1}
    assert data["rollbacks"]["count"] == 1
    assert data["rollbacks"]["points"] == {"points": 100}
    assert data["rollbacks"]["by_reason"] == {"customer_request": 1}
    assert data["rollbacks"]["by_staff"] == {"sally": 1}
    assert data["rollback_rate"] == round(1 / 3, 4)
    assert data["queues"]["rollback_approvals"]["count"] == 1
    assert data["queues"]["rollback_approvals"]["oldest_at"] == d(2026, 3, 4, 8)
    assert data["queues"]["redemption_approvals"] == {"count": 0, "oldest_at": None}
    assert data["breakage"]["points"] == {"issued": 1500, "expired": 0, "rate": 0.0}
    daily = {row["date"]: row for row in data["daily"]}
    assert len(daily) == 10
    assert daily[dt.date(2026, 3, 2)]["redemptions"] == 2
    assert daily[dt.date(2026, 3, 3)] == {
        "date": dt.date(2026, 3, 3),
        "redemptions": 1,
        "awards": 1,
        "rollbacks": 0,
        "code_redemptions": 0,
    }
    assert daily[dt.date(2026, 3, 4)]["rollbacks"] == 1
    assert sum(row["redemptions"] for row in data["daily"]) == 3


def test_days_are_counted_in_the_program_time_zone(figures, settings):
    # 23:30 UTC on March 3rd is already March 4th in Berlin.
    settings.TIME_ZONE = "Europe/Berlin"
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        data = report.build_summary(PERIOD)
    daily = {row["date"]: row for row in data["daily"]}
    assert daily[dt.date(2026, 3, 3)]["redemptions"] == 0
    assert daily[dt.date(2026, 3, 4)]["redemptions"] == 1
    assert daily[dt.date(2026, 3, 4)]["awards"] == 1


def test_a_range_that_leaves_a_day_out_does_not_count_it(figures):
    data = report.build_summary(Period(start=dt.date(2026, 3, 3), end=dt.date(2026, 3, 3)))
    assert data["redemptions"]["count"] == 1
    assert data["rollbacks"]["count"] == 0
    assert data["rollback_rate"] == 0.0


def test_the_api_answers_the_same_figures(figures, approver):
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        body = ok(approver.get(f"{BASE}/reports/summary/?from=2026-03-01&to=2026-03-10"))
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-10"
    assert body["liability"]["points"] == {"balance": 1200, "pending": 0, "debt": 0}
    assert body["expiring_30_days"] == {"miles": 300}
    assert body["redemptions"]["count"] == 3 and body["redemptions"]["points"] == {"points": 300}
    assert body["rollbacks"]["by_reason"] == {"customer_request": 1}
    assert body["rollback_rate"] == 0.3333
    assert body["queues"]["rollback_approvals"]["count"] == 1
    assert [row["redemptions"] for row in body["daily"]][:4] == [0, 2, 1, 0]


def test_the_figures_are_cached_for_a_few_minutes(figures, approver, metric, support_user):
    url = f"{BASE}/reports/summary/?from=2026-03-01&to=2026-03-10"
    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        first = ok(approver.get(url))
        loyalty.credit_points(member=figures["bob"], metric=metric, amount=50, reason="later", actor=SYSTEM)
        assert ok(approver.get(url))["liability"] == first["liability"]
        assert report.summary(PERIOD, fresh=True)["liability"]["points"]["balance"] == 1250


@pytest.mark.parametrize(
    "query, field",
    [
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-03-10&to=2026-03-01", "from"),
        ("from=2020-01-01&to=2026-03-01", "to"),
    ],
)
def test_a_bad_range_is_a_clear_400(approver, query, field):
    assert_error(approver.get(f"{BASE}/reports/summary/?{query}"), 400, "invalid", field)


def test_only_report_readers_get_the_figures(support, approver, campaign_manager_user, auditor_user):
    from tests.conftest import api_client_for

    assert support.get(f"{BASE}/reports/summary/").status_code == 403
    for user in (campaign_manager_user, auditor_user):
        assert api_client_for(user).get(f"{BASE}/reports/summary/").status_code == 200
    ok(approver.get(f"{BASE}/reports/summary/"))


def test_without_dates_the_report_covers_the_last_30_days():
    period = report.parse_period(None, None, today=dt.date(2026, 3, 31))
    assert (period.start, period.end) == (dt.date(2026, 3, 2), dt.date(2026, 3, 31))
    assert len(period.days()) == 30


def test_the_beat_task_refreshes_the_default_range_in_the_cache(figures, metric):
    from loyalty.tasks import refresh_insight_report

    with time_machine.travel(d(2026, 3, 10, 12), tick=False):
        period = Period.last_days(30)
        before = report.summary(period)
        loyalty.credit_points(member=figures["bob"], metric=metric, amount=50, reason="later", actor=SYSTEM)
        assert report.summary(period)["liability"] == before["liability"]  # cached
        refresh_insight_report()
        assert report.summary(period)["liability"]["points"]["balance"] == 1250
