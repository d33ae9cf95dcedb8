"""The API docs (Swagger UI, self-hosted) work in a real browser under the Content-Security-Policy,
for an auditor signed in to the admin; the browser fixture fails the test on any CSP report."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.mark.django_db(transaction=True)
def test_an_auditor_reads_the_api_docs(live_server, browser, sign_in, screenshot, auditor_user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, auditor_user)
    browser.get(f"{live_server.url}/api/docs/")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-tag")))
    assert "Loyalty & promotions back office API" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock")
    assert len(operations) >= 50
    screenshot(browser, "api_docs")
