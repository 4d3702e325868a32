"""Fair share of the worker (gunicorn, the worker process, real LXD and
named): a member's flood of power requests merges into one waiting job per
instance, a member's queue is capped, and another member's request is
claimed before the flood's backlog."""
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import lxd
from app.config import Settings
from app.names import project_name
from live import LiveWarren
from support import KEY, launch, post_action

FLOOD = 500


@pytest.fixture
def live(tmp_path, settings, unique_name):
    warren = LiveWarren(tmp_path, workers=4)
    warren.flooder, warren.neighbour = unique_name("fa"), unique_name("fb")
    warren.add_member(warren.flooder)
    warren.add_member(warren.neighbour)
    yield warren.start()
    warren.stop()
    for member in (warren.flooder, warren.neighbour):
        lxd.delete_project(lxd.backend(settings), project_name(member))


def _request(browser, name):
    response = browser.submit("/instances/new", browser.token("/instances/new"), name=name,
                              profile="small", image="busybox", keys=KEY)
    assert response.status_code == 303, response.text[:500]
    return response.headers["Location"]


@pytest.mark.slow
def test_a_flood_of_restarts_does_not_hold_up_another_members_request(live, settings):
    flooder, neighbour = live.session(live.flooder), live.session(live.neighbour)
    locations = [_request(flooder, f"w{number}") for number in range(4)]
    for location in locations:
        assert flooder.wait_settled(location)["status"] == "ready"
    token = flooder.token("/")

    def restart(index):
        return flooder.submit(f"{locations[index % 4]}/restart", token).status_code
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(restart, range(FLOOD)))
    assert set(codes) <= {303, 409} and codes.count(303) > 0
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        waiting = db.execute("SELECT instance_id, count(*) FROM jobs WHERE state = 'pending' "
                             "GROUP BY instance_id").fetchall()
    assert all(count == 1 for _, count in waiting), waiting  # repeats merged

    location = _request(neighbour, "mine")
    assert neighbour.wait_settled(location)["status"] == "ready"
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        created, started = db.execute(
            "SELECT j.created_at, j.started_at FROM jobs j JOIN instances i ON i.id = j.instance_id "
            "JOIN users u ON u.id = i.user_id WHERE u.username = ? AND j.kind = 'provision'",
            [live.neighbour]).fetchone()
        ahead = db.execute(
            "SELECT count(*) FROM jobs j JOIN instances i ON i.id = j.instance_id JOIN users u "
            "ON u.id = i.user_id WHERE u.username = ? AND j.started_at >= ? AND j.started_at < ?",
            [live.flooder, created, started]).fetchone()[0]
    # Seconds are the stored resolution: allow the jobs in hand, one per worker thread.
    assert ahead <= settings.worker_threads, ahead


def test_a_member_may_have_only_so_many_actions_waiting(tmp_path, settings, members, worker):
    alice = members()
    locations = [launch(alice, name=f"q{number}")[0] for number in range(3)]
    worker.stop()  # nothing is drained meanwhile
    app = alice.application
    app.config["WARREN"] = Settings(app.config["WARREN"], member_job_limit=2)
    assert post_action(alice, locations[0], "stop").status_code == 303
    assert post_action(alice, locations[0], "restart").status_code == 303  # merged: still one
    assert post_action(alice, locations[1], "stop").status_code == 303
    refused = post_action(alice, locations[2], "stop")
    assert refused.status_code == 409
    assert "You have 2 actions waiting for the worker already (the limit is 2)" in \
        refused.get_data(as_text=True)
    assert post_action(alice, locations[2], "delete").status_code == 303  # deletion is never refused
