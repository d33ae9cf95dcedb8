"""A support agent works a member's page in a real headless Chromium.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import pytest

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import LedgerEntry, PointBalance

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.mark.django_db(transaction=True)
def test_support_agent_adjusts_points_on_the_member_page(
    live_server, browser, sign_in, screenshot, member, metric, support_user
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    services.credit_points(member=member, metric=metric, amount=500, reason="Purchase at Web shop", actor=SYSTEM)
    services.enroll_member(external_id="M-2", email="bob@example.com", name="Bob Other", actor=SYSTEM)
    wait = WebDriverWait(browser, 15)

    # sign in as the support agent
    sign_in(browser, support_user)

    # search the member by email
    browser.get(f"{live_server.url}/admin/loyalty/member/")
    search = wait.until(ec.presence_of_element_located((By.ID, "searchbar")))
    search.send_keys("ann@example.com")
    search.submit()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and "ann@example.com" in rows[0].text
    screenshot(browser, "admin_member_search")

    # open it: balances, then adjust points
    rows[0].find_element(By.LINK_TEXT, "M-1").click()
    balance = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'td.balance[data-metric="points"]')))
    assert balance.text == "500"
    form = browser.find_element(By.ID, "adjust-points-form")
    Select(form.find_element(By.NAME, "metric")).select_by_visible_text("points")
    form.find_element(By.NAME, "amount").send_keys("250")
    form.find_element(By.NAME, "reason").send_keys("Goodwill: late delivery")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert "Adjusted +250 points" in message.text
    balance = browser.find_element(By.CSS_SELECTOR, 'td.balance[data-metric="points"]')
    assert balance.text == "750"
    newest = browser.find_element(By.CSS_SELECTOR, "#recent-ledger tbody tr")
    assert "+250" in newest.text and "Goodwill: late delivery" in newest.text and "sally" in newest.text
    path = screenshot(browser, "admin_member_adjust_points")
    assert path.stat().st_size > 10_000

    entry = LedgerEntry.objects.get(member=member, kind="adjustment")
    assert (entry.amount, entry.actor_id) == (250, support_user.pk)
    assert PointBalance.objects.get(member=member, metric=metric).balance == 750
    # the message links to the entry it wrote
    message.find_element(By.LINK_TEXT, f"#{entry.pk}").click()
    wait.until(ec.url_contains(f"/admin/loyalty/ledgerentry/{entry.pk}/change/"))
    assert "Goodwill: late delivery" in browser.find_element(By.ID, "content").text
