"""The headless Chromium every browser test drives, and its sign-in and screenshot helpers.

Screenshots land in artifacts/screenshots/ (gitignored) for a human to look at. A test module may
set ``SCREENSHOT_PREFIX`` (prepended to every name) and ``SCREENSHOT_MIN_BYTES`` (each screenshot
must be larger than that) to tune the ``screenshot`` fixture.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.helpers import chromium_paths

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

CHROMIUM_ARGS = [
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
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_test_failed = report.failed
    return report


@pytest.fixture
def browser(request, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for CSP reports
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
        # Every page a browser test visits must work under the Content-Security-Policy: a blocked
        # inline script, style or handler is reported on the console, and fails the test here.
        blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        if blocked and not getattr(request.node, "browser_test_failed", False):
            pytest.fail("The Content-Security-Policy blocked something:\n" + "\n".join(blocked), pytrace=False)
        if getattr(request.node, "browser_test_failed", False):
            # What the browser showed when the test failed, for whoever reads the CI log.
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            stem = SCREENSHOTS / f"FAILED-{request.node.name}"
            driver.save_screenshot(f"{stem}.png")
            Path(f"{stem}.html").write_text(f"<!-- {driver.current_url} -->\n{driver.page_source}")
            print(f"Failed at {driver.current_url}; page saved to {stem}.html and .png")
    finally:
        driver.quit()


@pytest.fixture
def screenshot(request):
    """``screenshot(driver, name)``: a full-page screenshot; grows the window to the page's height first."""
    prefix = getattr(request.module, "SCREENSHOT_PREFIX", "")
    min_bytes = getattr(request.module, "SCREENSHOT_MIN_BYTES", None)

    def take(driver, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        )
        driver.set_window_size(1400, min(max(height + 140, 1000), 6000))
        path = SCREENSHOTS / f"{prefix}{name}.png"
        assert driver.save_screenshot(str(path))
        driver.set_window_size(1400, 1000)
        if min_bytes is not None:
            assert path.stat().st_size > min_bytes
        return path

    return take


@pytest.fixture
def sign_in(live_server):
    """``sign_in(driver, user)``: log into the admin as ``user`` (password ``pw-<username>``)."""

    def login(driver, user, timeout: float = 15) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver.delete_all_cookies()
        driver.get(f"{live_server.url}/admin/login/?next=/admin/")
        driver.find_element(By.NAME, "username").send_keys(user.username)
        driver.find_element(By.NAME, "password").send_keys(f"pw-{user.username}")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        # Wait for the signed-in page, not just any admin header (the login page has one too):
        # navigating on before the login's redirect lands would race with it.
        WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.ID, "user-tools")))
        assert "/admin/login/" not in driver.current_url, f"could not sign in as {user.username}"

    return login
