"""Worker crashes, later steps: the worker process is killed with SIGKILL
right after the instance started and right before the DNS update, 20 times
per step; each time a new worker recovers. Afterwards there are no orphans,
DNS matches the desired set exactly and quota counts are exact (real LXD,
real named). The shared parts are in tests/crashing.py."""
import pytest

from crashing import assert_consistent, live_warren, provision_rounds

# serial: each round waits on a worker's start and stop, which a busy machine stretches past its limits.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


@pytest.fixture(scope="module")
def live(tmp_path_factory, settings):
    yield from live_warren(tmp_path_factory, settings, "crashlate")


@pytest.mark.parametrize("step", ("started", "before-dns"))
def test_kill_during_provisioning(live, settings, zone, step):
    provision_rounds(live, step)
    assert_consistent(live, settings, zone)
