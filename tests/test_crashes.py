"""Worker crashes, early steps and deletion: the worker process is killed
with SIGKILL right after the job's first commit and right after the LXD
create, 20 times per step, and in the middle of a delete, 20 times; each
time a new worker recovers. Afterwards there are no orphans, DNS matches
the desired set exactly and quota counts are exact (real LXD, real named).
The later steps are in tests/test_crashes_late.py; the shared parts in
tests/crashing.py."""
import sqlite3

import pytest

from crashing import ROUNDS, assert_consistent, killed_at, live_warren, provision_rounds, recovered

# serial: each round waits on a worker's start and stop, which a busy machine stretches past its limits.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


@pytest.fixture(scope="module")
def live(tmp_path_factory, settings):
    yield from live_warren(tmp_path_factory, settings, "crash")


@pytest.mark.parametrize("step", ("committed", "created"))
def test_kill_during_provisioning(live, settings, zone, step):
    provision_rounds(live, step)
    assert_consistent(live, settings, zone)


def test_kill_in_the_middle_of_a_delete(live, settings, zone):
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        ids = [row[0] for row in db.execute("SELECT id FROM instances ORDER BY id LIMIT ?", [ROUNDS])]
    assert len(ids) == ROUNDS  # made by the provisioning rounds above
    for instance_id in ids:
        location = f"/instances/{instance_id}"
        killed_at(live, "mid-delete", lambda: live.browser.submit(location + "/delete"))
        recovered(live, lambda: live.browser.wait_gone(location))
    assert_consistent(live, settings, zone)
