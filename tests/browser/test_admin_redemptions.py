"""Approvers and support agents work redemptions and rollbacks in a real headless Chromium.

Screenshots land in artifacts/screenshots/redemptions_*.png (gitignored) for a human to look at.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from loyalty import roles
from loyalty import services as loyalty
from loyalty.kernel import SYSTEM
from loyalty.models import PointBalance, Reward
from redemptions import services
from redemptions.models import Redemption, Rollback
from tests.helpers import make_user

SCREENSHOT_PREFIX = "redemptions_"  # for the screenshot fixture (tests/browser/conftest.py)
SCREENSHOT_MIN_BYTES = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


def run_action(browser, wait, name: str, *pks: int):
    """Tick rows of a change list, choose an action, press Go."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for pk in pks:
        browser.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{pk}"]').click()
    Select(browser.find_element(By.NAME, "action")).select_by_value(name)
    browser.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()


def success_text(wait) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success"))).text


@pytest.fixture
def scene(db, member, metric, support_user, approver_user):
    loyalty.credit_points(member=member, metric=metric, amount=2000, reason="Purchases", actor=SYSTEM)
    lounge = Reward.objects.create(
        external_id="R-VIP",
        name="Weekend hamper",
        type=Reward.Type.PHYSICAL_PRODUCT,
        metric=metric,
        points=200,
        stock=10,
        requires_approval=True,
        requires_fulfillment=True,
    )
    mug = Reward.objects.create(
        external_id="R-MUG", name="Mug", type=Reward.Type.PHYSICAL_PRODUCT, metric=metric, points=150, stock=5
    )
    Reward.objects.create(
        external_id="R-BIKE", name="Bike", type=Reward.Type.PHYSICAL_PRODUCT, metric=metric, points=9000
    )
    submitted = [services.redeem_reward(member=member, reward=lounge, actor=support_user) for _ in range(3)]
    # Shipping is fulfilment work; this approver also handles parcels (the Approver role alone cannot).
    approver_user.user_permissions.add(Permission.objects.get(codename="change_fulfillment"))
    return {"member": member, "lounge": lounge, "mug": mug, "submitted": submitted}


@pytest.mark.django_db(transaction=True)
def test_approver_works_the_queue_approves_rejects_and_ships(
    live_server, browser, sign_in, screenshot, scene, approver_user
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 15)
    first, second, third = scene["submitted"]
    sign_in(browser, approver_user)

    # the Redemptions screen links to the queue prominently
    browser.get(f"{live_server.url}/admin/redemptions/redemption/")
    link = wait.until(ec.presence_of_element_located((By.ID, "approval-queue-link")))
    assert "approval queue (3)" in link.text.lower()
    screenshot(browser, "list")
    link.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "th a, td.field-id a").text for r in rows] == [
        str(first.pk),
        str(second.pk),
        str(third.pk),
    ]  # oldest first
    assert "1,400 points" in rows[0].text  # the member's balance
    screenshot(browser, "queue")

    # approve the oldest
    run_action(browser, wait, "approve_selected", first.pk)
    assert f"Approved 1: #{first.pk}." in success_text(wait)

    # reject the next one with a reason (intermediate page)
    run_action(browser, wait, "reject_selected", second.pk)
    reason = wait.until(ec.presence_of_element_located((By.NAME, "reason")))
    assert "1 selected" in browser.find_element(By.ID, "content").text
    reason.send_keys("Duplicate order")
    screenshot(browser, "reject_reason")
    browser.find_element(By.CSS_SELECTOR, 'input[name="apply"]').click()
    assert f"Rejected 1: #{second.pk}." in success_text(wait)
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and str(third.pk) in rows[0].text
    screenshot(browser, "queue_after")

    # mark the approved one shipped from its page: confirmed / paid, then shipped with tracking
    browser.get(f"{live_server.url}/admin/redemptions/redemption/{first.pk}/change/")
    for target, tracking in [("confirmed_paid", ""), ("shipped", "TRK-123")]:
        wait.until(ec.element_to_be_clickable((By.ID, "do-change_fulfillment_selected"))).click()
        Select(wait.until(ec.presence_of_element_located((By.NAME, "fulfillment_status")))).select_by_value(target)
        if tracking:
            browser.find_element(By.NAME, "tracking_ref").send_keys(tracking)
            screenshot(browser, "ship_form")
        browser.find_element(By.CSS_SELECTOR, 'input[name="apply"]').click()
        assert f"Moved 1: #{first.pk}." in success_text(wait)
    assert "TRK-123" in browser.find_element(By.ID, "content").text
    screenshot(browser, "shipped")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.approval_status, first.fulfillment_status, first.tracking_ref) == ("approved", "shipped", "TRK-123")
    assert (second.approval_status, second.status, second.decision_reason) == (
        "rejected",
        "canceled",
        "Duplicate order",
    )
    assert first.decided_by_id == second.decided_by_id == approver_user.pk


@pytest.mark.django_db(transaction=True)
def test_support_agent_redeems_a_reward_from_the_member_page(
    live_server, browser, sign_in, screenshot, scene, support_user
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 15)
    member = scene["member"]
    sign_in(browser, support_user)
    browser.get(f"{live_server.url}/admin/loyalty/member/{member.pk}/change/")
    form = wait.until(ec.presence_of_element_located((By.ID, "redeem-reward-form")))
    assert "1400" in form.find_element(By.CSS_SELECTOR, ".redeem-balance").text

    # too expensive: the cost shows it, the service refuses clearly, nothing is written
    Select(form.find_element(By.NAME, "redeem-reward")).select_by_visible_text("Bike — 9,000 points")
    assert "more than the balance" in browser.find_element(By.ID, "redeem-cost").text
    form.find_element(By.CSS_SELECTOR, 'input[name="_redeem"]').click()
    error = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.error")))
    assert "Not redeemed." in error.text and "9000 are needed" in error.text
    screenshot(browser, "member_refused")

    form = browser.find_element(By.ID, "redeem-reward-form")
    Select(form.find_element(By.NAME, "redeem-reward")).select_by_visible_text("Mug — 150 points, 5 in stock")
    quantity = form.find_element(By.NAME, "redeem-quantity")
    quantity.clear()
    quantity.send_keys("2")
    assert browser.find_element(By.ID, "redeem-cost").text == "300 points"
    screenshot(browser, "member_redeem_form")
    form.find_element(By.CSS_SELECTOR, 'input[name="_redeem"]').click()
    assert "2 × Mug for 300 points" in success_text(wait)
    # The page came back at the rewards panel; the message is in the window, not scrolled off.
    assert browser.execute_script("return window.scrollY") > 0
    assert browser.execute_script(
        "const r = document.querySelector('ul.messagelist li.success').getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;"
    )
    newest = browser.find_element(By.CSS_SELECTOR, "#member-rewards tbody tr")
    assert "Mug" in newest.text and "300" in newest.text
    screenshot(browser, "member_redeemed")

    red = Redemption.objects.filter(reward=scene["mug"]).get()
    assert (red.quantity, red.points_spent, red.channel, red.created_by_id) == (2, 300, "admin", support_user.pk)
    assert PointBalance.objects.get(member=member).balance == 1100


@pytest.mark.django_db(transaction=True)
def test_support_rolls_back_for_fraud_and_another_approver_approves(
    live_server, browser, sign_in, screenshot, scene, support_user, approver_user
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 15)
    member = scene["member"]
    red = services.redeem_reward(member=member, reward=scene["mug"], actor=support_user)
    sign_in(browser, support_user)
    browser.get(f"{live_server.url}/admin/redemptions/redemption/{red.pk}/change/")
    wait.until(ec.element_to_be_clickable((By.ID, "do-rollback_selected"))).click()
    Select(wait.until(ec.presence_of_element_located((By.NAME, "reason")))).select_by_value("fraud")
    browser.find_element(By.NAME, "note").send_keys("Card reported stolen")
    screenshot(browser, "rollback_form")
    browser.find_element(By.CSS_SELECTOR, 'input[name="apply"]').click()
    assert f"#{red.pk}" in success_text(wait)
    rollback = Rollback.objects.get(redemption=red)
    assert rollback.status == "pending_approval" and "fraud" in rollback.approval_required_because
    assert PointBalance.objects.get(member=member).balance == 1250  # nothing back yet

    # a second person approves it from the rollback queue
    other = make_user("olga", roles.APPROVER)
    sign_in(browser, other)
    browser.get(f"{live_server.url}/admin/redemptions/rollback/")
    wait.until(ec.presence_of_element_located((By.ID, "rollback-queue-link"))).click()
    row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    assert "Fraud" in row.text and "reason fraud" in row.text
    screenshot(browser, "rollback_queue")
    run_action(browser, wait, "approve_rollbacks", rollback.pk)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'input[name="apply"]'))).click()
    assert f"Approved 1: #{rollback.pk}." in success_text(wait)
    screenshot(browser, "rollback_approved")

    rollback.refresh_from_db()
    red.refresh_from_db()
    assert (rollback.status, rollback.approved_by_id, rollback.points_returned) == ("executed", other.pk, 150)
    assert red.status == "canceled"
    assert PointBalance.objects.get(member=member).balance == 1400
    # the member page lists it; the trends page counts it
    browser.get(f"{live_server.url}/admin/loyalty/member/{member.pk}/change/")
    assert "Fraud" in wait.until(ec.presence_of_element_located((By.ID, "member-rollbacks"))).text
    screenshot(browser, "member_rollbacks")
    browser.get(f"{live_server.url}/admin/redemptions/rollback/trends/")
    total = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-total-reason="fraud"]')))
    assert total.text == "1"
    screenshot(browser, "trends")
