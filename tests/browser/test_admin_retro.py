"""A retro claim end to end in a real headless Chromium: support files it from the member page, an
approver approves it from the queue, the claim shows processed.

Screenshots land in artifacts/screenshots/retro_*.png (gitignored) for a human to look at.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from loyalty import services
from loyalty.kernel import SYSTEM
from loyalty.models import PointBalance, ProgramSettings
from retro.models import RetroClaim

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

RULES = [
    {"name": "Visit", "metric": "points", "action": "fixed", "points": 10},
    {
        "name": "Tier share",
        "metric": "points",
        "action": "percent_of_amount",
        "percent_by_tier": {"GOLD": 20, "SILVER": 15, "BRONZE": 10},
    },
]


@pytest.mark.django_db(transaction=True)
def test_support_files_a_retro_claim_and_an_approver_approves_it(
    live_server,
    browser,
    sign_in,
    screenshot,
    metric,
    tiers,
    admin_user,
    support_user,
    approver_user,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ProgramSettings.objects.update_or_create(pk=1, defaults={"retro_enabled": True})
    now = timezone.now()
    rule_set = services.create_rule_set(
        name="Base", valid_from=now - dt.timedelta(days=60), rules=RULES, actor=admin_user
    )
    services.publish_rule_set(rule_set=rule_set, actor=admin_user)
    with time_machine.travel(now - dt.timedelta(days=30), tick=False):
        member = services.enroll_member(external_id="M-7", email="sam@example.com", name="Sam Shopper", actor=SYSTEM)
    for i, amount in enumerate(["300.00", "42.50"], start=1):
        services.record_transaction(
            external_id=f"BILL-{i}",
            occurred_at=now - dt.timedelta(days=i * 3),
            amount=Decimal(amount),
            currency="EUR",
            store="AMS-1",
            channel="pos",
            actor=SYSTEM,
        )
    wait = WebDriverWait(browser, 15)

    # --- the support agent finds the purchase from the member page and files the claim ---------
    sign_in(browser, support_user)
    browser.get(f"{live_server.url}/admin/loyalty/member/{member.pk}/change/")
    panel = wait.until(ec.presence_of_element_located((By.ID, "retro-search-form")))
    panel.find_element(By.NAME, "retro-store").send_keys("AMS-1")
    panel.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#retro-results tbody tr")))
    assert [r.get_attribute("data-bill") for r in rows] == ["BILL-1", "BILL-2"]
    screenshot(browser, "retro_member_search")

    row = browser.find_element(By.CSS_SELECTOR, '#retro-results tr[data-bill="BILL-1"]')
    row.find_element(By.NAME, "note").send_keys("Forgot the card at the till")
    row.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    claim = RetroClaim.objects.get()
    assert f"Retro claim #{claim.pk} filed for bill BILL-1: preview 40 points" in message.text
    claim_row = browser.find_element(By.CSS_SELECTOR, f'#retro-claims tr[data-claim="{claim.pk}"]')
    assert "Submitted" in claim_row.text and "40" in claim_row.text
    screenshot(browser, "retro_member_claim_filed")

    # --- an approver approves it from the queue ----------------------------------------------------
    sign_in(browser, approver_user)
    browser.get(f"{live_server.url}/admin/retro/retroclaim/queue/")
    rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    assert len(rows) == 1 and "BILL-1" in rows[0].text and "Base v1 · tier BRONZE" in rows[0].text
    screenshot(browser, "retro_queue")
    rows[0].find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("approve_selected")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert f"Approved 1 claim(s): #{claim.pk}" in message.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")  # the queue is empty
    screenshot(browser, "retro_queue_after_approval")

    # --- the claim shows processed ---------------------------------------------------------------
    browser.get(f"{live_server.url}/admin/retro/retroclaim/{claim.pk}/change/")
    status = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#claim-decision h2")))
    assert "Processed" in status.text
    assert "40 points credited" in browser.find_element(By.ID, "claim-decision").text
    screenshot(browser, "retro_claim_processed")

    claim.refresh_from_db()
    assert (claim.status, claim.points_awarded, claim.approved_by_id) == ("processed", 40, approver_user.pk)
    assert PointBalance.objects.get(member=member, metric=metric).balance == 40


@pytest.mark.django_db(transaction=True)
def test_earning_screens_in_the_browser(live_server, browser, sign_in, screenshot, metric, tiers, admin_user):
    """The rule set page (versions, lifecycle) and the preview form, for a look at their layout."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    now = timezone.now()
    rule_set = services.create_rule_set(
        name="Base", valid_from=now - dt.timedelta(days=60), rules=RULES, actor=admin_user
    )
    services.publish_rule_set(rule_set=rule_set, actor=admin_user)
    draft = services.new_rule_set_version(rule_set=rule_set, actor=admin_user, valid_from=now + dt.timedelta(days=1))
    wait = WebDriverWait(browser, 15)
    sign_in(browser, admin_user)

    browser.get(f"{live_server.url}/admin/loyalty/ruleset/{draft.pk}/change/")
    wait.until(ec.presence_of_element_located((By.ID, "ruleset-versions")))
    assert "v1" in browser.find_element(By.ID, "ruleset-versions").text
    screenshot(browser, "retro_ruleset_draft")

    browser.get(f"{live_server.url}/admin/loyalty/ruleset/preview/")
    form = wait.until(ec.presence_of_element_located((By.ID, "preview-form")))
    form.find_element(By.NAME, "amount").send_keys("250")
    Select(form.find_element(By.NAME, "tier")).select_by_visible_text(str(tiers["GOLD"]))
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    result = wait.until(ec.presence_of_element_located((By.ID, "preview-result")))
    assert "60 points" in result.text  # 10 + 20 % of 250
    screenshot(browser, "retro_earning_preview")
