"""R1: concurrent requests cannot overbook a quota (gunicorn, 4 workers,
the worker process, real LXD and named)."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import lxd
from app.names import project_name
from live import LiveWarren

pytestmark = pytest.mark.slow

REQUESTS = 50
ROUNDS = 10
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d race@test"


@pytest.fixture
def live(tmp_path, settings, unique_name):
    warren = LiveWarren(tmp_path, workers=4)
    warren.member = unique_name("race")
    warren.add_member(warren.member, "instances=2")
    yield warren.start()
    warren.stop()
    lxd.delete_project(lxd.backend(settings), project_name(warren.member))


def test_fifty_concurrent_requests_against_a_quota_of_two(live, settings):
    import sqlite3
    browsers = [live.session(live.member) for _ in range(8)]
    tokens = [browser.token("/instances/new") for browser in browsers]
    scoped = lxd.backend(settings).client(project=project_name(live.member))
    for round_number in range(ROUNDS):
        def request(index):
            browser = browsers[index % len(browsers)]
            return browser.submit("/instances/new", tokens[index % len(browsers)],
                                  name=f"r{round_number}n{index}", profile="small",
                                  image="busybox", keys=KEY)
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            responses = list(pool.map(request, range(REQUESTS)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses.count(303) == 2 and statuses.count(409) == 48, statuses
        refusals = [r.text for r in responses if r.status_code == 409]
        assert all("instances: this needs 1, you use 2 of your 2" in text for text in refusals)
        accepted = [r.headers["Location"] for r in responses if r.status_code == 303]
        for location in accepted:
            assert browsers[0].wait_settled(location)["status"] == "ready"
        with sqlite3.connect(live.folder / "warren.sqlite3") as db:
            rows = {name for (name,) in db.execute("SELECT lxd_name FROM instances")}
        in_lxd = set(lxd.instance_states(scoped))
        assert len(rows) == 2 and in_lxd == rows  # no orphans either way
        for location in accepted:
            assert browsers[0].submit(location + "/delete").status_code == 303
        for location in accepted:
            browsers[0].wait_gone(location)
        assert lxd.instance_states(scoped) == {}
