"""The app as bin/up runs it: gunicorn with several workers, a real port."""
import sqlite3

import pytest

from live import PASSWORD, Browser, LiveWarren

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path):
    warren = LiveWarren(tmp_path, worker=False)
    warren.add_member("chief", role="admin")
    yield warren.start()
    warren.stop()


def test_admin_logs_in_through_gunicorn_and_sessions_span_workers(live):
    http = live.session("chief")
    # Many requests land on different workers; the server-side session holds on each.
    for _ in range(20):
        page = http.get(live.base + "/admin/users", allow_redirects=False)
        assert page.status_code == 200 and "chief" in page.text
    assert http.submit("/logout").status_code == 302
    for _ in range(8):
        assert http.get(live.base + "/", allow_redirects=False).status_code == 302


def test_wrong_password_through_gunicorn(live):
    http = live.session("chief", password="not " + PASSWORD)
    assert http.get(live.base + "/", allow_redirects=False).status_code == 302


def test_login_throttling_holds_across_workers(live):
    # Five failures, spread over gunicorn's four workers, block the user name...
    for _ in range(5):
        assert Browser(live.base).login("chief", "wrong " + PASSWORD).status_code == 401
    for _ in range(8):  # ...on every worker, even with the right password
        response = Browser(live.base).login("chief", PASSWORD)
        assert response.status_code == 429
        assert "Too many failed sign-ins; try again in 15 minutes." in response.text
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:  # the window passes
        db.execute("UPDATE login_failures SET at = '2000-01-01T00:00:00+00:00'")
    assert Browser(live.base).login("chief", PASSWORD).status_code == 302
