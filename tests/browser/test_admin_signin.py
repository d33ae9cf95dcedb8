"""The sign-in lockout as a person meets it in a real browser: twelve wrong passwords, then the
right one, and the login page says why nothing happened."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.mark.django_db(transaction=True)
def test_twelve_wrong_passwords_then_the_right_one_shows_the_lockout(live_server, browser, screenshot, support_user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)

    def attempt(password: str) -> str:
        browser.get(f"{live_server.url}/admin/login/?next=/admin/")
        browser.find_element(By.NAME, "username").send_keys(support_user.username)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.errornote"))).text

    for i in range(12):
        attempt(f"wrong-{i}")
    message = attempt(f"pw-{support_user.username}")
    assert "Too many failed sign-ins for this account from your address" in message
    assert "/admin/login/" in browser.current_url
    assert not browser.find_elements(By.ID, "user-tools")
    screenshot(browser, "admin_signin_locked_out")
