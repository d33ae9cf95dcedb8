"""A support agent works a member's page in a real headless Chromium.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from loyalty import services
from loyalty.models import LedgerEntry, PointBalance
from tests.conftest import chromium_paths

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),  # whitenoise without collectstatic
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ]:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """A full-page screenshot: grow the window to the page's height first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1400, min(max(height + 140, 1000), 6000))
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


@pytest.mark.django_db(transaction=True)
def test_support_agent_adjusts_points_on_the_member_page(live_server, browser, member, metric, support_user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    services.credit_points(member=member, metric=metric, amount=500, reason="Purchase at Web shop")
    services.enroll_member(external_id="M-2", email="bob@example.com", name="Bob Other")
    wait = WebDriverWait(browser, 15)

    # sign in as the support agent
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(support_user.username)
    browser.find_element(By.NAME, "password").send_keys(f"pw-{support_user.username}")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "site-name")))

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
