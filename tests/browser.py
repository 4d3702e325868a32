"""A real browser for the browser tests: Debian's headless Chromium driven
through its chromedriver by selenium, with a fresh profile per test and no
traffic beyond 127.0.0.1. When a test fails, its screenshot, page source and
console go to the test's tmp_path and the report names them. Test files load
this module as a plugin (pytest_plugins = ("browser",)) for the `driver`
fixture and the failure hook."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # given explicitly, so selenium never fetches a driver
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    # Chromium's own traffic (field trials, updates, sync, QUIC probes) would reach the Internet.
    "--disable-quic", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
    ("--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,"
     "OptimizationGuideModelDownloading"),
    # Even so it tries a few Google hosts (sign-in, updates) and the search
    # engine's start page. Names other than 127.0.0.1 resolve to nothing (no
    # DNS query leaves), and any connection that is not to a loopback address,
    # where the app listens, goes to a closed local port instead.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--window-size=1280,1024",
)
PREFERENCES = {  # no password manager prompts or leak checks on the sign-in form
    "credentials_enable_service": False,
    "profile.password_manager_enabled": False,
    "profile.password_manager_leak_detection": False,
}
# Explicit waits only (no implicit wait): selenium's advice, as mixing the
# two makes timeouts add up unpredictably.
WAIT = 30


@dataclass
class BrowserRun:
    """One test's browser, the folder its failure output goes to, and the
    console messages read from it so far."""
    driver: webdriver.Chrome
    folder: Path
    console: list[dict] = field(default_factory=list)

    def read_console(self) -> list[dict]:
        """Everything the page logged to the console during the test."""
        try:
            self.console += self.driver.get_log("browser")
        except WebDriverException:  # the browser is gone; keep what was read
            pass
        return self.console


RUN = pytest.StashKey[BrowserRun]()


def start_chromium(profile: Path, log: Path) -> webdriver.Chrome:
    """A headless Chromium on a new, empty profile folder."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", PREFERENCES)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(log)))


@pytest.fixture
def driver(request, tmp_path):
    """A fresh headless Chromium; the test fails if a page broke the
    Content-Security-Policy (the browser then blocked something)."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    run = BrowserRun(start_chromium(profile, tmp_path / "chromedriver.log"), tmp_path)
    request.node.stash[RUN] = run
    yield run.driver
    violations = [entry["message"] for entry in run.read_console()
                  if "Content Security Policy" in entry["message"]]
    run.driver.quit()
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, keep what the browser showed (before the driver fixture
    closes it) and name the files in the report."""
    report = yield
    run = item.stash.get(RUN, None)
    if run is not None and report.failed and report.when in ("setup", "call"):
        report.sections.append(("browser", save_evidence(run, report.when)))
    return report


def save_evidence(run: BrowserRun, phase: str) -> str:
    """Screenshot, page source and console of the browser now; says where they went."""
    stem = run.folder / f"failure-{phase}"
    try:
        run.driver.save_screenshot(str(stem.with_suffix(".png")))
        stem.with_suffix(".html").write_text(run.driver.page_source)
        url = run.driver.current_url
    except WebDriverException as error:
        return f"the browser could not be read: {error.msg}"
    stem.with_suffix(".console.json").write_text(json.dumps(run.read_console(), indent=1))
    return (f"page: {url}\nscreenshot: {stem}.png\npage source: {stem}.html\n"
            f"console: {stem}.console.json")


def wait(driver, timeout: float = WAIT) -> WebDriverWait:
    """An explicit wait that polls often, so a test goes on as soon as it can."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2)


def click_through(driver, element: WebElement, timeout: float = WAIT) -> None:
    """Click something that loads a new page (a link, a form's button) and
    wait until the old page is gone and the new one has loaded."""
    old_page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait(driver, timeout).until(expected_conditions.staleness_of(old_page))
    wait(driver, timeout).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def button(scope, label: str) -> WebElement:
    """The button in the page's main part (or inside scope) with this label."""
    if isinstance(scope, WebElement):
        return scope.find_element(By.XPATH, f".//button[normalize-space()='{label}']")
    return scope.find_element(By.XPATH, f"//main//button[normalize-space()='{label}']")


def fill(driver, field_id: str, text: str) -> None:
    """Replace a text field's content by typing, as a person does."""
    element = driver.find_element(By.ID, field_id)
    element.clear()
    element.send_keys(text)


def field_errors(driver, field_id: str) -> list[str]:
    """The error messages shown next to a form field."""
    return [error.text for error in driver.find_elements(
        By.XPATH, f"//*[@id='{field_id}']/ancestor::div[contains(@class, 'field')][1]"
                  "//*[contains(@class, 'error')]")]


def table_row(table: WebElement, first_cell: str) -> dict[str, WebElement]:
    """The cells of the row whose first cell reads first_cell, by column heading."""
    headings = [heading.text for heading in table.find_elements(By.CSS_SELECTOR, "thead th")]
    row = table.find_element(By.XPATH, f".//tbody/tr[normalize-space(td[1])='{first_cell}']")
    return dict(zip(headings, row.find_elements(By.XPATH, "./td")))


def sign_in(driver, base: str, username: str, password: str) -> None:
    """Sign in through the login form."""
    driver.get(base + "/login")
    fill(driver, "username", username)
    fill(driver, "password", password)
    click_through(driver, button(driver, "Sign in"))
