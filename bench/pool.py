"""What a warm pool could save on this LXD: a raw launch against the fastest
hand-out LXD 5.0.2 allows from a pool project.

A pool instance lives in a pool project (counted against no member) and
must end in the member's restricted project. LXD 5.0.2 moves an instance
between projects only while it is stopped (a running container needs CRIU
live migration), and the move is a copy that gives the container a new
isolated id map, so its first start in the member's project shifts the
owners of its files again. The hand-out measured here is the best case of
that path: a pool instance created, started once (its files shifted, its
first boot done) and stopped ahead of time; then, timed, the move into the
member's project with its new name, one config write (the keys and
Warren's keys), and the start. The baseline is a raw create + start of the
same image in the same project. No DNS on either side (the same update
would be added to both).

    bin/bench pool [-n 5] [--image busybox --image debian-12]

Both sides run in two throwaway LXD projects made like member projects
(restricted, isolated id maps only), removed afterwards.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import lxd, projects, quotas  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.profiles import ProfileSet  # noqa: E402

PROFILE = "small"


def make_project(settings, name: str) -> None:
    """A project restricted as a member's, with the small profile in it."""
    room = quotas.Quota(instances=64, cpu=64, memory=64 * 2**30, disk=512 * 2**30,
                        processes=64000, nesting=True, cpu_priority=10, forwards=0, records=0,
                        domains=0, snapshots=0)
    lxd.ensure_project(lxd.backend(settings).client(), name,
                       projects.project_config(room, settings.lxd_network, "bench"), "bench pool")
    profile = ProfileSet(settings.profiles_dir).all()[PROFILE]
    lxd.ensure_profile(lxd.backend(settings).client(project=name), PROFILE,
                       profile.lxd_config(),
                       profile.lxd_devices(settings.lxd_storage_pool, settings.lxd_network), "bench")


def spec(name: str, image: str) -> dict:
    return {"name": name, "type": "container", "source": {"type": "image", "alias": image},
            "profiles": [PROFILE], "config": {"security.idmap.isolated": "true"}, "devices": {}}


def measure(settings, image: str, runs: int) -> None:
    pool, member = f"warren-benchpool{os.getpid()}", f"warren-benchmember{os.getpid()}"
    lock = lxd.idmap_lock_path(lxd.backend(settings))
    raw_times, handout_times, parts = [], [], []
    try:
        for name in (pool, member):
            make_project(settings, name)
        pool_client = lxd.backend(settings).client(project=pool)
        member_client = lxd.backend(settings).client(project=member)
        for run in range(runs):
            started = time.perf_counter()
            made = lxd.create_instance(member_client, f"raw{run}", image, profiles=[PROFILE],
                                       config=spec("", image)["config"], lock_path=lock)
            lxd.start_instance(made)
            raw_times.append(time.perf_counter() - started)

            warm = lxd.create_instance(pool_client, f"pool{run}", image, profiles=[PROFILE],
                                       config=spec("", image)["config"], lock_path=lock)
            lxd.start_instance(warm)  # first start: files shifted, first boot done
            warm.stop(force=True, wait=True)
            base_in_pool = lxd.get_instance(pool_client, f"pool{run}").config["volatile.idmap.base"]
            started = time.perf_counter()
            moved = pool_client.api.instances[f"pool{run}"].post(
                json={"name": f"warm{run}", "project": member, "migration": True})
            pool_client.operations.wait_for_operation(moved.json()["operation"])
            after_move = time.perf_counter()
            lxd.set_config(member_client, f"warm{run}", "user.warren.keys", "ssh-ed25519 AAAA bench\n")
            after_config = time.perf_counter()
            handed = lxd.get_instance(member_client, f"warm{run}")
            lxd.start_instance(handed)
            done = time.perf_counter()
            handout_times.append(done - started)
            parts.append((after_move - started, after_config - after_move, done - after_config,
                          base_in_pool, handed.config.get("volatile.idmap.base")))
    finally:
        for name in (pool, member):
            lxd.delete_project(lxd.backend(settings), name)
    raw, handout = statistics.median(raw_times), statistics.median(handout_times)
    print(f"image={image} profile={PROFILE} n={runs}")
    print(f"raw create+start:                          median {raw * 1000:.0f} ms "
          f"(min {min(raw_times) * 1000:.0f}, max {max(raw_times) * 1000:.0f})")
    print(f"pool hand-out (move + config + start):     median {handout * 1000:.0f} ms "
          f"(min {min(handout_times) * 1000:.0f}, max {max(handout_times) * 1000:.0f})")
    for move, config, start, before, after in parts:
        print(f"  move {move * 1000:.0f} ms, config {config * 1000:.0f} ms, start {start * 1000:.0f} ms; "
              f"id map base {before} in the pool, {after} after the move")
    print(f"ratio hand-out/raw: {handout / raw:.3f}  (target <= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs per side (default 5)")
    parser.add_argument("--image", action="append", help="default: busybox and debian-12")
    args = parser.parse_args()
    settings = load_settings()
    for image in args.image or ["busybox", "debian-12"]:
        measure(settings, image, args.n)


if __name__ == "__main__":
    main()
