"""A campaign manager generates codes and looks one up, in a real headless Chromium.

Screenshots land in artifacts/screenshots/promotions_*.png for a human to look at.
"""

from __future__ import annotations

import pytest

from promotions import services
from promotions.models import Campaign, Code, CodeBatch

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.mark.django_db(transaction=True)
def test_campaign_manager_generates_codes_and_looks_one_up(
    live_server,
    browser,
    sign_in,
    screenshot,
    member,
    metric,
    campaign_manager_user,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    user = campaign_manager_user
    campaign = services.create_campaign(
        actor=user, name="Spring sale", kind=Campaign.Kind.PERCENT_DISCOUNT, value=10, code_pattern="SPR-****-****"
    )
    services.change_campaign_status(campaign=campaign, status=Campaign.Status.ACTIVE, actor=user)
    wait = WebDriverWait(browser, 20)

    sign_in(browser, user, timeout=20)

    # the campaign list, then the campaign
    browser.get(f"{live_server.url}/admin/promotions/campaign/")
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, "Spring sale"))).click()
    form = wait.until(ec.presence_of_element_located((By.ID, "generate-codes-form")))
    screenshot(browser, "promotions_campaign_page")

    # generate 50 codes (Celery runs eagerly once the request's transaction commits)
    form.find_element(By.NAME, "count").send_keys("50")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert "50 codes (SPR-****-****)" in message.text
    batch = CodeBatch.objects.get(campaign=campaign)
    assert (batch.status, batch.generated) == ("completed", 50)
    browser.refresh()
    inline = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".batch-progress")))
    assert "50/50 (100%)" in inline.text
    screenshot(browser, "promotions_campaign_generated")

    # one code is validated and redeemed at the till, so its timeline has a story to tell
    code = Code.objects.filter(batch=batch).order_by("id").first()
    request = services.clean_request(
        codes=[code.code.lower()],
        member=member,
        order={"id": "T-1001", "amount": "80.00"},
        client="pos-7",
        ip="10.0.0.7",
    )
    services.validate_codes(request, actor=user)
    services.redeem_codes(request, actor=user)

    # the campaign's codes, newest first; search the chosen one exactly
    browser.find_element(By.ID, "campaign-codes-link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 50
    screenshot(browser, "promotions_code_list")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys(code.normalized.lower())
    search.submit()
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, code.code))).click()

    # the code's record links to the lookup page: QR and timeline
    wait.until(ec.presence_of_element_located((By.ID, "code-lookup-link"))).click()
    qr = wait.until(ec.presence_of_element_located((By.ID, "code-qr-image")))
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", qr))
    assert qr.size["width"] >= 150
    timeline = browser.find_element(By.ID, "code-timeline").text
    for text in ("Generated", "Validated", "Redeemed", "pos-7", "10.0.0.7", "T-1001", "valid"):
        assert text in timeline
    assert browser.find_element(By.ID, "code-status").text == "Redeemed"
    assert browser.find_elements(By.CSS_SELECTOR, ".rollback-form")
    path = screenshot(browser, "promotions_code_lookup")
    assert path.stat().st_size > 10_000
