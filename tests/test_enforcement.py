"""The kernel enforces a profile's limits inside a member's container
(real LXD): memory (OOM kill), processes (pids.max), root disk (btrfs quota)
and CPU allowance (CFS quota). The container is requested through the web
form with a deliberately tiny profile, so each limit is reached quickly."""
import time

import pytest

from app import lxd
from conftest import make_app
from support import launch, member_instance, run_in

TINY = """
description: Tiny profile for enforcement tests
instance_type: container
limits: {cpu: 1, memory: 64MiB, disk: 128MiB, processes: 60, cpu_allowance: 20ms/100ms,
         cpu_priority: 5}
images: [busybox]
"""
MiB = 1024 * 1024


@pytest.fixture
def app(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "tiny.yaml").write_text(TINY)
    return make_app(tmp_path, profiles_dir=str(profiles))


@pytest.fixture
def container(settings, worker, members):
    alice = members()
    launch(alice, name="tiny", profile="tiny")
    return member_instance(settings, alice, "tiny")


def cgroup_file(instance, v2_name: str, v1_path: str) -> str:
    """The path of a cgroup file inside the container (v2 or v1 layout)."""
    code, _, _ = lxd.execute(instance, ["test", "-e", f"/sys/fs/cgroup/{v2_name}"])
    return f"/sys/fs/cgroup/{v2_name}" if code == 0 else f"/sys/fs/cgroup/{v1_path}"


def test_memory_over_the_limit_is_oom_killed(container):
    # awk doubles a string until the allocation no longer fits in 64 MiB.
    code, _, _ = lxd.execute(container, ["awk", 'BEGIN { s = "x"; while (1) s = s s }'])
    assert code == 137  # SIGKILL from the OOM killer
    events = run_in(container, "cat", cgroup_file(container, "memory.events",
                                                   "memory/memory.oom_control"))
    kills = int(next(line.split()[1] for line in events.splitlines() if line.startswith("oom_kill ")))
    assert kills >= 1


def test_pids_max_holds(container):
    pids_max = cgroup_file(container, "pids.max", "pids/pids.max")
    assert run_in(container, "cat", pids_max) == "60"
    # A child shell forks 100 sleepers, counting with builtins only (once the
    # limit is reached nothing else can fork); it dies with "can't fork".
    script = (
        'sh -c "i=0; while [ \\$i -lt 100 ]; do sleep 5 & i=\\$((i+1)); echo \\$i > /tmp/started; done" '
        f"2>/tmp/fork-error; echo $?; read c < {pids_max.replace('pids.max', 'pids.current')}; "
        "echo $c; read s < /tmp/started; echo $s; read e < /tmp/fork-error; echo $e")
    code, out, _ = lxd.execute(container, ["sh", "-c", script])
    child_status, current, started, error = out.splitlines()[:4]
    assert child_status == "2" and "can't fork" in error
    assert int(current) <= 60 and int(started) < 60


def test_btrfs_quota_stops_writes_at_the_root_disk_size(container):
    code, _, err = lxd.execute(container, ["dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=400"])
    assert code != 0 and ("quota" in err.lower() or "space" in err.lower()), err
    written = int(run_in(container, "stat", "-c", "%s", "/fill"))
    assert 32 * MiB < written <= 128 * MiB
    run_in(container, "rm", "/fill")


def test_cpu_allowance_caps_usage(container):
    usage_file = cgroup_file(container, "cpu.stat", "cpuacct/cpuacct.usage")

    def cpu_seconds() -> float:
        text = run_in(container, "cat", usage_file)
        if usage_file.endswith("cpu.stat"):
            return int(text.split("usage_usec ")[1].split()[0]) / 1e6
        return int(text) / 1e9

    before, started = cpu_seconds(), time.monotonic()
    lxd.execute(container, ["timeout", "3", "sh", "-c", "while :; do :; done"])
    used, wall = cpu_seconds() - before, time.monotonic() - started
    assert 0.05 * wall < used < 0.30 * wall, (used, wall)  # 20ms/100ms: a hard 20% cap
