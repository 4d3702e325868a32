"""Isolated id maps under parallel creation (real LXD): LXD 5.0 hands one
range to two containers created at once unless Warren holds its id map
lock across the allocation (app/lxd/idmaps.py)."""
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from app import locks, lxd, names, quotas
from app.lxd import idmaps
from support import probe_project

PROBE = {"description": "probe", "instance_type": "container",
         "limits": {"cpu": 1, "memory": "128MiB", "disk": "256MiB", "processes": 100,
                    "cpu_allowance": "50%", "cpu_priority": 5},
         "images": ["busybox"]}
PARALLEL = 10


def ranges_in_lxd(settings) -> list[tuple[int, int, str]]:
    """(first host id, size, project/name) of every container's id map on the daemon."""
    client = lxd.backend(settings).client()
    found = client.api.instances.get(params={"all-projects": "true", "recursion": 1}).json()
    ranges = []
    for item in found["metadata"]:
        base = item["config"].get("volatile.idmap.base")
        if item["type"] == "container" and base:
            maps = yaml.safe_load(item["config"]["volatile.idmap.next"])
            size = max(entry["Maprange"] for entry in maps)
            ranges.append((int(base), size, f"{item['project']}/{item['name']}"))
    return sorted(ranges)


def overlaps(ranges) -> list[tuple[str, str]]:
    """Pairs of isolated containers whose host id ranges overlap."""
    return [(first[2], second[2]) for first, second in zip(ranges, ranges[1:])
            if first[0] + first[1] > second[0] and first[1] != 0]


def test_overlaps_finds_a_shared_range():
    assert overlaps([(165536, 65536, "a/x"), (165536, 65536, "b/y")]) == [("a/x", "b/y")]
    assert overlaps([(165536, 65536, "a/x"), (231072, 65536, "b/y")]) == []


@pytest.fixture
def member_project(settings, unique_name):
    name = names.project_name(unique_name("idm"))
    room = dataclasses.replace(quotas.TIERS["full"], instances=PARALLEL + 1, cpu=PARALLEL + 1,
                               memory=(PARALLEL + 1) * 128 * 2**20, processes=100 * (PARALLEL + 1))
    probe_project(settings, name, room, PROBE)
    yield name
    lxd.delete_project(lxd.backend(settings), name)


def test_containers_created_at_once_get_ranges_of_their_own(settings, member_project, unique_name):
    """Ten creations at once through Warren's create (each thread its own
    client, as the worker's job threads have), every one starts, and no two
    containers on the daemon share a range, none below the subordinate ids."""
    lock = lxd.idmap_lock_path(lxd.backend(settings))
    wanted = [unique_name("idm") for _ in range(PARALLEL)]
    ready = threading.Barrier(PARALLEL)

    def create(name):
        client = lxd.backend(settings).client(project=member_project)
        ready.wait()
        made = lxd.create_instance(client, name, "busybox", profiles=["probe"],
                                   config={"security.idmap.isolated": "true"}, lock_path=lock)
        lxd.start_instance(made)
        return made.config["volatile.idmap.base"]

    with ThreadPoolExecutor(PARALLEL) as pool:
        bases = list(pool.map(create, wanted))
    assert len(set(bases)) == PARALLEL, bases
    ranges = ranges_in_lxd(settings)
    assert overlaps(ranges) == []
    lowest = min(first for first, _size, _name in ranges)
    assert lowest >= 165536, ranges  # LXD's first isolated range: subordinate ids + 65536
    states = lxd.instance_states(lxd.backend(settings).client(project=member_project))
    assert states == {name: "Running" for name in wanted}


def test_the_lock_is_held_only_until_lxd_has_written_the_range(settings, member_project,
                                                               unique_name):
    """While the id map lock is held elsewhere, a creation waits; once the
    range is written the lock is free again, before the creation ends."""
    path = lxd.idmap_lock_path(lxd.backend(settings))
    client = lxd.backend(settings).client(project=member_project)
    name = unique_name("idm")
    spec = {"name": name, "type": "container", "source": {"type": "image", "alias": "busybox"},
            "config": {"security.idmap.isolated": "true"}, "devices": {}, "profiles": ["probe"]}
    with idmaps.allocation(path) as lock:
        lock.acquire()
        operation = client.api.instances.post(json=spec).json()["operation"]
        idmaps.wait_for_base(client, name, operation)
        base = lxd.get_instance(client, name).config[idmaps.BASE_KEY]
    other = locks.HostLock(path)
    other.acquire()  # free again (the creation may still be unpacking)
    other.release()
    client.operations.wait_for_operation(operation)
    assert int(base) >= 165536
