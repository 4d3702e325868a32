"""Quota arithmetic and the static address pool (pure logic)."""
import pytest

from app import addresses, quotas
from app.errors import QuotaExceeded
from app.profiles import Limits, Profile

GiB = 1024 ** 3


def profile(cpu=1, memory=GiB, disk=4 * GiB, processes=100):
    return Profile("p", "test", "container", Limits(cpu, memory, disk, processes, "100%", 5), ("busybox",))


def test_half_share_is_half_of_a_full_share():
    full, half = quotas.TIERS["full"], quotas.TIERS["half"]
    for field in ("instances", "cpu", "memory", "disk", "processes", "forwards", "records", "domains",
                  "snapshots"):
        assert getattr(half, field) * 2 == getattr(full, field)
    assert full.nesting and not half.nesting


def test_room_is_checked_for_every_resource_and_named():
    quota = quotas.TIERS["half"]
    used = {"instances": 1, "cpu": 2, "memory": 2 * GiB + GiB // 2, "disk": 4 * GiB, "processes": 100}
    quotas.check_room(quota, used, profile(cpu=1, memory=GiB // 2))
    with pytest.raises(QuotaExceeded) as caught:
        quotas.check_room(quota, used, profile(cpu=2, memory=GiB))
    message = str(caught.value)
    assert "CPUs: this needs 2, you use 2 of your 3" in message
    assert "memory: this needs 1GiB, you use 2560MiB of your 3GiB" in message
    assert "instances" not in message


def test_project_limits_mirror_the_quota():
    assert quotas.TIERS["half"].lxd_limits() == {
        "limits.instances": "2", "limits.cpu": "3", "limits.memory": "3GiB",
        "limits.disk": "20GiB", "limits.processes": "3000"}


def test_pool_and_dynamic_range_split_the_bridge_network():
    pool = addresses.static_pool("10.87.0.1/24")
    low, high = addresses.dynamic_range("10.87.0.1/24").split("-")
    assert "10.87.0.1" not in pool and pool[0] == "10.87.0.2"
    assert pool[-1] < low and high == "10.87.0.254"


def test_half_share_caps_cpu_priority():
    assert quotas.cpu_priority(quotas.TIERS["full"], profile()) == 5
    capped = Profile("p", "t", "container", Limits(1, GiB, GiB, 100, "100%", 10), ("busybox",))
    assert quotas.cpu_priority(quotas.TIERS["full"], capped) == 10
    assert quotas.cpu_priority(quotas.TIERS["half"], capped) == 5


def test_usage_table_shows_every_resource():
    used = {"instances": 1, "cpu": 1, "memory": GiB // 2, "disk": 4 * GiB, "processes": 500,
            "forwards": 3, "records": 5, "domains": 1, "snapshots": 2}
    rows = quotas.usage_table(quotas.TIERS["full"], used)
    assert [row["resource"] for row in rows] == ["instances", "CPUs", "memory",
                                                 "disk (root disks and snapshots)",
                                                 "processes", "port forwards", "DNS records",
                                                 "custom domains", "manual snapshots"]
    assert rows[5] == {"resource": "port forwards", "used": "3", "allowed": "4", "percent": 75}
    assert rows[6] == {"resource": "DNS records", "used": "5", "allowed": "20", "percent": 25}
    assert rows[7] == {"resource": "custom domains", "used": "1", "allowed": "4", "percent": 25}
    assert rows[8] == {"resource": "manual snapshots", "used": "2", "allowed": "10", "percent": 20}
    assert rows[0] == {"resource": "instances", "used": "1", "allowed": "4", "percent": 25}
    assert rows[2]["used"] == "512MiB" and rows[2]["allowed"] == "6GiB"
