"""The operations home, the dashboard and list widths in a real headless Chromium (issue 17).

Screenshots land in artifacts/screenshots/insight_*.png (gitignored) for a human to look at.
"""

from __future__ import annotations

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command

from loyalty.models import Member
from redemptions.models import Rollback
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import make_user
from tests.insight.conftest import make_history

SCREENSHOT_PREFIX = "insight_"
SCREENSHOT_MIN_BYTES = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def figures(member, metric, support_user, tiers):
    """The insight tests' hand-countable history (March 2026)."""
    return make_history(member, metric, support_user)


def wait_drawn(browser, canvas_id: str, timeout: float = 15) -> int:
    """Wait until loyalty/insight.js has drawn the chart; the number of days it shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda b: b.execute_script(f"return document.getElementById('{canvas_id}').dataset.drawn || null")
    )
    return int(browser.execute_script(f"return document.getElementById('{canvas_id}').dataset.drawn"))


def chart_points(browser, canvas_id: str) -> list[list[int]]:
    """What Chart.js holds for the canvas: each dataset's data (proves the library ran)."""
    return browser.execute_script(
        f"var c = Chart.getChart(document.getElementById('{canvas_id}'));"
        "return c ? c.data.datasets.map(function (d) { return d.data; }) : null;"
    )


@pytest.mark.django_db(transaction=True)
def test_the_approver_home_shows_the_waiting_rollback_and_a_chart(
    live_server, browser, sign_in, screenshot, figures, approver_user
):
    from selenium.webdriver.common.by import By

    assert Rollback.objects.filter(status="pending_approval").count() == 1
    with time_machine.travel("2026-03-06 08:00Z", tick=True):
        sign_in(browser, approver_user)
        browser.get(f"{live_server.url}/admin/")
        row = browser.find_element(By.ID, "queue-rollback_approvals")
        assert row.find_element(By.CSS_SELECTOR, ".count").text == "1"
        assert "You cannot approve a rollback you requested" in row.text
        assert wait_drawn(browser, "home-chart") == 30
        redemptions, awards, rollbacks = chart_points(browser, "home-chart")
        assert sum(redemptions) == 3 and sum(awards) == 1 and sum(rollbacks) == 1
        assert "View site" not in browser.find_element(By.ID, "user-tools").text
        screenshot(browser, "home_approver")
        row.find_element(By.TAG_NAME, "a").click()
        assert "/admin/redemptions/rollback/queue/" in browser.current_url


@pytest.mark.django_db(transaction=True)
def test_support_home_has_the_look_ups_and_no_advice_for_what_it_cannot_do(
    live_server, browser, sign_in, screenshot, figures, support_user
):
    from selenium.webdriver.common.by import By

    sign_in(browser, support_user)
    browser.get(f"{live_server.url}/admin/")
    row = browser.find_element(By.ID, "queue-rollback_approvals")
    assert "approve" not in row.text.lower().replace("waiting for a second person", "")
    assert not browser.find_elements(By.ID, "home-chart")
    screenshot(browser, "home_support")
    box = browser.find_element(By.ID, "lookup-members-input")
    box.send_keys("bob oth")
    box.submit()
    assert "Bob Other" in browser.find_element(By.ID, "result_list").text


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_changes_range_and_redraws(live_server, browser, sign_in, screenshot, figures, approver_user):
    from selenium.webdriver.common.by import By

    sign_in(browser, approver_user)
    browser.get(f"{live_server.url}/admin/dashboard/?from=2026-03-01&to=2026-03-10")
    assert wait_drawn(browser, "daily-chart") == 10
    assert [sum(d) for d in chart_points(browser, "daily-chart")] == [3, 1, 1, 0]
    assert wait_drawn(browser, "reasons-chart") == 1
    screenshot(browser, "dashboard_10_days")
    # A new range through the form: the page comes back with the new figures and the chart redrawn.
    # (Typing into a date input depends on the browser's locale: set the values as a picker would.)
    for field, value in (("range-from", "2026-03-03"), ("range-to", "2026-03-04")):
        browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, field), value)
    browser.find_element(By.CSS_SELECTOR, "#range-form input[type=submit]").click()
    assert "from=2026-03-03" in browser.current_url, browser.current_url
    assert wait_drawn(browser, "daily-chart") == 2
    assert [sum(d) for d in chart_points(browser, "daily-chart")] == [1, 1, 1, 0]
    assert "3 Mar 2026 – 4 Mar 2026" in browser.find_element(By.ID, "range-title").text
    screenshot(browser, "dashboard_2_days")
    # A preset link: the last 7 days (nothing in them: the fixture is in March 2026).
    browser.find_element(By.LINK_TEXT, "7 days").click()
    assert wait_drawn(browser, "daily-chart") == 7


MAIN_LISTS = [
    "/admin/",
    "/admin/dashboard/",
    "/admin/loyalty/member/",
    "/admin/loyalty/ledgerentry/",
    "/admin/loyalty/transaction/",
    "/admin/redemptions/redemption/",
    "/admin/redemptions/redemption/queue/",
    "/admin/redemptions/award/",
    "/admin/redemptions/rollback/",
    "/admin/redemptions/rollback/queue/",
    "/admin/retro/retroclaim/",
    "/admin/retro/retroclaim/queue/",
    "/admin/promotions/campaign/",
    "/admin/promotions/code/",
    "/admin/promotions/abusesignal/",
    "/admin/loyalty/outboxmessage/",
]


SHOOT_AT_1366 = {
    "/admin/loyalty/member/": "members",
    "/admin/redemptions/redemption/": "redemptions",
    "/admin/redemptions/rollback/": "rollbacks",
    "/admin/retro/retroclaim/": "retro_claims",
    "/admin/loyalty/ledgerentry/": "ledger",
}


@pytest.mark.django_db(transaction=True)
def test_at_1366_by_768_no_main_list_scrolls_sideways(live_server, browser, sign_in, screenshot, settings):
    settings.DEBUG = True  # seed_demo refuses otherwise (it creates known passwords)
    call_command("seed_demo", members=40, verbosity=0)
    long_name = "Annabelle-Maximiliana " + "Wolfeschlegelsteinhausenbergerdorff" * 3
    Member.objects.filter(pk=Member.objects.order_by("pk").first().pk).update(name=long_name)
    boss = make_user("wide", superuser=True)
    sign_in(browser, boss)
    browser.set_window_size(1366, 768)
    too_wide = {}
    for path in MAIN_LISTS:
        browser.get(f"{live_server.url}{path}")
        scroll, viewport = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll > viewport:
            too_wide[path] = ("page", scroll, viewport)
        # The admin wraps a change list in a box that scrolls on its own (.results): that counts too.
        inner = browser.execute_script(
            "return Array.from(document.querySelectorAll('.results')).filter(function (e) {"
            " return e.scrollWidth > e.clientWidth + 1; }).map(function (e) { return [e.scrollWidth, e.clientWidth]; })"
        )
        if inner:
            too_wide[path] = ("list box", *inner[0])
        if path in SHOOT_AT_1366:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(SCREENSHOTS / f"insight_1366_{SHOOT_AT_1366[path]}.png"))
    assert not too_wide, too_wide
