"""The main flows in a real browser (headless Chromium, tests/browser.py)
against Warren as bin/up runs it: gunicorn, the worker process, real LXD and
named. Each test does what a person does: fills the forms, presses the
buttons and reads the page."""
import re
import shutil

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from app import lxd
from app.names import project_name
from live import PASSWORD, REPO, LiveWarren
from support import KEY, console_operations, open_jobs, remove_names, wait_until

# browser is both this file's helpers and a plugin (the driver fixture, the
# failure hook): pytest rewrites its asserts only if told before the import.
pytest.register_assert_rewrite("browser")
from browser import button, click_through, field_errors, fill, sign_in, table_row, wait

pytest_plugins = ("browser",)
pytestmark = [pytest.mark.slow, pytest.mark.browser]
PROVISIONING = 120  # seconds a request may take to become ready


@pytest.fixture
def live(tmp_path, settings, zone):
    """Warren on a scratch database and a copy of profiles/. Afterwards every
    request is let settle, then its DNS names and members' projects go."""
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    warren = LiveWarren(tmp_path)
    warren.env["WARREN_PROFILES_DIR"] = str(tmp_path / "profiles")
    warren.members = []
    yield warren.start()
    database = tmp_path / "warren.sqlite3"
    wait_until(lambda: not open_jobs(database), timeout=PROVISIONING,
               message="every job finished")  # nothing is still on its way into LXD
    warren.stop()
    remove_names(database, zone)
    for username in warren.members:
        lxd.delete_project(lxd.backend(settings), project_name(username))


@pytest.fixture
def member(live, unique_name):
    """A fresh member of the live Warren (password live.PASSWORD)."""
    username = unique_name("b")
    live.add_member(username)
    live.members.append(username)
    return username


def request_from_form(driver, live, name):
    """Open the request form from the dashboard and submit a busybox instance
    on the small profile."""
    driver.get(live.base + "/")
    click_through(driver, driver.find_element(By.LINK_TEXT, "Request an instance"))
    fill(driver, "name", name)
    Select(driver.find_element(By.ID, "profile")).select_by_value("small")
    Select(driver.find_element(By.ID, "image")).select_by_value("busybox")
    fill(driver, "keys", KEY)
    click_through(driver, button(driver, "Request"))


def page_replaced(error: WebDriverException) -> bool:
    """Whether an error only says the page was being replaced: right after a
    load Chromium may still hand out nodes of the old document."""
    return isinstance(error, StaleElementReferenceException) \
        or "does not belong to the document" in str(error)


def dashboard_state(driver, live, name) -> str:
    """Load the dashboard afresh and read the State column of an instance
    ('' while the page is still being replaced)."""
    driver.get(live.base + "/")
    try:
        return table_row(driver.find_element(By.CSS_SELECTOR, "main table"), name)["State"].text
    except WebDriverException as error:
        if not page_replaced(error):
            raise
        return ""


def press(driver, name: str, label: str) -> None:
    """Press an instance's action button on the dashboard, finding it afresh:
    right after a reload Chromium may still hand out nodes of the old
    document. A second press is harmless (a waiting power action merges)."""
    def pressed(d):
        try:
            actions = table_row(d.find_element(By.CSS_SELECTOR, "main table"), name)[""]
            click_through(d, button(actions, label))
        except WebDriverException as error:
            if not page_replaced(error):
                raise
            return False
        return True
    wait(driver).until(pressed, f"could not press {label} for {name}")


def test_a_member_signs_in_through_the_login_form(live, member, driver):
    sign_in(driver, live.base, member, PASSWORD)
    assert driver.current_url == live.base + "/"
    assert driver.find_element(By.TAG_NAME, "h1").text == "My instances"
    assert button(driver.find_element(By.TAG_NAME, "header"), f"Sign out {member}")


@pytest.mark.lxd
@pytest.mark.named
def test_a_field_error_is_shown_next_to_the_field_with_the_input_kept(live, member, driver):
    sign_in(driver, live.base, member, PASSWORD)
    request_from_form(driver, live, "Bad_Name")

    assert driver.find_element(By.TAG_NAME, "h1").text == "Request an instance"
    assert field_errors(driver, "name"), "no error next to the name"
    assert not field_errors(driver, "keys")
    assert driver.find_element(By.ID, "name").get_attribute("value") == "Bad_Name"
    assert driver.find_element(By.ID, "keys").get_attribute("value").strip() == KEY
    assert driver.find_element(By.ID, "profile").get_attribute("value") == "small"
    assert driver.find_element(By.ID, "image").get_attribute("value") == "busybox"

    fill(driver, "name", "web")  # the rest is still filled in
    click_through(driver, button(driver, "Request"))
    assert re.fullmatch(re.escape(live.base) + r"/instances/\d+", driver.current_url)
    assert driver.find_element(By.TAG_NAME, "h1").text == "web"
    assert driver.find_element(By.TAG_NAME, "code").text.startswith(f"web.{member}.")


@pytest.mark.lxd
@pytest.mark.named
def test_the_status_page_follows_the_request_to_ready_without_a_reload(live, member, driver):
    sign_in(driver, live.base, member, PASSWORD)
    request_from_form(driver, live, "web")
    status = driver.find_element(By.ID, "status")  # goes stale if the page is loaded again
    assert status.text != "ready", "ready before the page could follow anything"

    def shows_ready(_):
        try:
            return status.text == "ready"
        except StaleElementReferenceException:
            return "reloaded"
    shown = wait(driver, PROVISIONING).until(shows_ready, "the status page never showed ready")
    assert shown is True, "the status page was loaded again"
    steps = [step.text for step in driver.find_elements(By.CSS_SELECTOR, "#events li strong")]
    assert "ready" in steps, steps
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", driver.find_element(By.ID, "ipv4").text)
    assert not driver.find_element(By.ID, "error").is_displayed()


@pytest.mark.lxd
@pytest.mark.named
def test_a_member_stops_and_starts_an_instance_from_the_dashboard(live, member, driver):
    session = live.session(member)
    location = session.submit("/instances/new", session.token("/instances/new"), name="web",
                              profile="small", image="busybox", keys=KEY).headers["Location"]
    assert session.wait_settled(location, timeout=PROVISIONING)["status"] == "ready"
    sign_in(driver, live.base, member, PASSWORD)
    wait(driver).until(lambda d: dashboard_state(d, live, "web") == "Running",
                       "the dashboard never showed web Running")

    press(driver, "web", "stop")
    assert "Stop queued." in driver.find_element(By.CLASS_NAME, "flash").text
    wait(driver, PROVISIONING).until(lambda d: dashboard_state(d, live, "web") == "Stopped",
                                     "the dashboard never showed web Stopped")

    actions = table_row(driver.find_element(By.CSS_SELECTOR, "main table"), "web")[""]
    assert actions.find_element(By.TAG_NAME, "button").text == "start"  # no stop any more
    press(driver, "web", "start")
    assert "Start queued." in driver.find_element(By.CLASS_NAME, "flash").text
    wait(driver, PROVISIONING).until(lambda d: dashboard_state(d, live, "web") == "Running",
                                     "the dashboard never showed web Running again")


def test_an_admin_reviews_and_saves_a_profile_change(live, unique_name, driver, tmp_path):
    admin = unique_name("a")
    live.add_member(admin, role="admin")
    sign_in(driver, live.base, admin, PASSWORD)
    driver.get(live.base + "/admin/profiles/small")
    editor = driver.find_element(By.ID, "text")
    text = editor.get_attribute("value")
    assert "memory: 512MiB" in text
    fill(driver, "text", text.replace("memory: 512MiB", "memory: 768MiB"))
    click_through(driver, button(driver, "Review changes"))

    review = driver.find_element(By.ID, "review")
    change = table_row(review.find_element(By.TAG_NAME, "table"), "config limits.memory")
    assert (change["Now"].text, change["After saving"].text) == ("512MiB", "768MiB")
    assert len(review.find_elements(By.CSS_SELECTOR, "tbody tr")) == 1  # nothing else changes
    assert (tmp_path / "profiles" / "small.yaml").read_text() == text  # not saved yet

    click_through(driver, button(driver, "Save"))
    assert driver.current_url == live.base + "/admin/profiles"
    assert "Saved profiles/small.yaml" in driver.find_element(By.CLASS_NAME, "flash").text
    saved = (tmp_path / "profiles" / "small.yaml").read_text()
    assert saved == text.replace("memory: 512MiB", "memory: 768MiB")


@pytest.mark.lxd
@pytest.mark.named
def test_a_member_types_into_the_console_of_a_running_instance(live, member, driver, settings,
                                                               busybox_image):
    name = "con" + member[-6:]  # the instance's hostname inside
    session = live.session(member)
    location = session.submit("/instances/new", session.token("/instances/new"), name=name,
                              profile="small", image="busybox", keys=KEY).headers["Location"]
    assert session.wait_settled(location, timeout=PROVISIONING)["status"] == "ready"
    sign_in(driver, live.base, member, PASSWORD)
    driver.get(live.base + location)
    click_through(driver, driver.find_element(By.LINK_TEXT, "Console"))
    assert driver.find_element(By.TAG_NAME, "h1").text == f"Console of {name}"
    terminal = driver.find_element(By.ID, "terminal")
    wait(driver).until(lambda d: terminal.get_attribute("data-connected") == "true",
                       "the console never connected")

    terminal.click()
    rows = driver.find_element(By.CSS_SELECTOR, "#terminal .xterm-rows")

    def prompted(d):  # the shell starts a moment after the instance is ready: press Enter till then
        if "#" in rows.text:
            return True
        ActionChains(d).send_keys(Keys.ENTER).perform()
        return False
    wait(driver).until(prompted, "the console's shell never prompted")
    ActionChains(driver).send_keys("hostname" + Keys.ENTER).perform()
    wait(driver).until(lambda d: name in [line.strip() for line in rows.text.splitlines()],
                       f"{name} never showed in the terminal")

    assert len(console_operations(settings, member, name)) == 1
    driver.get(live.base + "/")  # leaving the page closes its socket
    wait_until(lambda: not console_operations(settings, member, name), timeout=15,
               message="LXD's console operation ended after the page closed")
