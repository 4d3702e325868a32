"""Warren on an LXD cluster: two figures, each against its baseline measured
in the same run, on the three-member LXD 5.0.2 cluster tests/cluster builds
on this machine (network namespaces, a VXLAN joining the members' bridges).

P3 on a cluster: an event of 35 teams x 3 busybox containers (105
instances) built by Warren (gunicorn + worker, over HTTPS to the cluster
with its certificate pinned; LXD places them), against raw pylxd creating,
starting and publishing the same 105 containers with their targets spread
over the three members by hand (round robin). The method is bin/bench
event's (bench/event.py): the raw thread sweep, Warren, the best raw count
again. Goal: ratio <= 1.2.

Evacuation: member m2 holding 10 running busybox containers. Baseline:
`lxc cluster evacuate m2 --force` alone, on 10 containers of the default
project (restored afterwards with `lxc cluster restore`, untimed). Warren:
10 member instances placed on m2 (a profile on the group `two`), from
`flask cluster evacuate m2 --yes --wait` until it returns: Warren's plan,
the request, the worker carrying it out (LXD's evacuation), rows and
routes following the instances, members told. The baseline runs before
and after Warren; the better counts. Goal: ratio <= 1.1.

    bin/bench cluster [-n 35] [--per-team 3] [--threads 8 --threads 16 ...]
                      [--evacuate 10] [--skip-event] [--skip-evacuation]

The cluster is built (about 5 s) and torn down at the end; nothing of the
run is left in it, on the host or in the zone.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from app import firewall, lxd  # noqa: E402
from app.config import load_settings  # noqa: E402
from cluster.cluster import Cluster, unique_name  # noqa: E402
import event  # noqa: E402
from provision import KEY  # noqa: E402

POOL, NETWORK, ADDRESS = "wbpool", "wbnet0", "10.80.0.1/24"
EVACUATED = "m2"


def cluster_env(cluster: Cluster, profiles: Path) -> dict:
    """The settings of every Warren of the run: the cluster over HTTPS."""
    return {"WARREN_LXD_URL": cluster.urls["m1"], "WARREN_LXD_CERT": str(cluster.client_cert),
            "WARREN_LXD_KEY": str(cluster.client_key), "WARREN_LXD_SERVER_CERT": str(cluster.cluster_cert),
            "WARREN_LXD_STORAGE_POOL": POOL, "WARREN_LXD_POOL_SIZE": "6GiB", "WARREN_LXD_NETWORK": NETWORK,
            "WARREN_NETWORK_ADDRESS": ADDRESS, "WARREN_CLUSTER_VXLAN_INTERFACE": "eth0",
            "WARREN_CLUSTER_VXLAN_ID": "80", "WARREN_PROFILES_DIR": str(profiles)}


def profiles_with_placement(folder: Path) -> Path:
    """The repository's profiles, and `ontwo`: small, on the group `two` (m2)."""
    shutil.copytree(REPO / "profiles", folder, dirs_exist_ok=True)
    small = yaml.safe_load((folder / "small.yaml").read_text())
    small.update(description="Small, on m2", placement="@two", images=["busybox"])
    (folder / "ontwo.yaml").write_text(yaml.safe_dump(small))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--teams", type=int, default=35, help="teams (default 35)")
    parser.add_argument("--per-team", type=int, default=3, help="machines per team (default 3)")
    parser.add_argument("--threads", type=int, action="append",
                        help="raw thread count; repeat for several (default: 8 16)")
    parser.add_argument("--evacuate", type=int, default=10, help="containers on m2 (default 10)")
    parser.add_argument("--skip-event", action="store_true", help="only the evacuation figure")
    parser.add_argument("--skip-evacuation", action="store_true", help="only the P3 figure")
    args = parser.parse_args()
    cluster = Cluster()
    cluster.down()
    cluster.up()
    scratch = Path(tempfile.mkdtemp(prefix="warren-bench-cluster-"))
    try:
        cluster.import_image("busybox")
        env = cluster_env(cluster, profiles_with_placement(scratch / "profiles"))
        os.environ.update(env)  # load_settings and every scratch Warren read them
        settings = load_settings()
        setup = event.scratch_warren(env)
        print(setup.flask("host", "setup-lxd").strip(), flush=True)
        cluster.lxc("m1", "cluster", "group", "create", "two")
        cluster.lxc("m1", "cluster", "group", "assign", EVACUATED, "default,two")
        results = {}
        if not args.skip_event:
            results["P3"] = event.measure(settings, args.teams, args.per_team, "busybox", "small",
                                          args.threads or [8, 16], [settings.worker_threads], 1800,
                                          targets=list(cluster.members), extra_env=env)
        if not args.skip_evacuation:
            results["evacuation"] = evacuation(cluster, settings, env, args.evacuate)
        print()
        for workers, ratio in results.get("P3", {}).items():
            print(f"P3 on the cluster ({workers} worker threads): ratio {ratio:.3f} (goal <= 1.2)")
        if "evacuation" in results:
            print(f"evacuation of {args.evacuate} containers: ratio {results['evacuation']:.3f} (goal <= 1.1)")
    finally:
        cluster.down()
        for remove in (firewall.remove_dhcp_guard, firewall.remove_mac_guard, firewall.remove_nd_guard):
            remove(NETWORK)
        firewall.ensure_forward_guard(NETWORK, False)
        shutil.rmtree(scratch, ignore_errors=True)


def raw_evacuation(cluster: Cluster, count: int) -> float:
    """10 containers of the default project on m2; `lxc cluster evacuate`
    timed, restore and deletion not."""
    client = cluster.client("m1")
    names = [unique_name("wbe") for _ in range(count)]
    for name in names:
        client.instances.create({"name": name, "source": {"type": "image", "alias": "busybox"},
                                 "devices": {"root": {"type": "disk", "path": "/", "pool": POOL},
                                             "eth0": {"type": "nic", "network": NETWORK, "name": "eth0"}}},
                                wait=True, target=EVACUATED)
        client.instances.get(name).start(wait=True)
    started = time.perf_counter()
    cluster.lxc("m1", "cluster", "evacuate", EVACUATED, "--force")
    wall = time.perf_counter() - started
    cluster.lxc("m1", "cluster", "restore", EVACUATED, "--force")
    for name in names:
        instance = client.instances.get(name)
        instance.stop(force=True, wait=True)
        instance.delete(wait=True)
    print(f"lxc cluster evacuate, {count} containers: {wall:.1f} s", flush=True)
    return wall


def warren_evacuation(cluster: Cluster, env: dict, count: int) -> tuple[float, event.LiveWarren]:
    """`count` Warren instances on m2; `flask cluster evacuate m2 --yes --wait`
    timed, the restore not. Returns (wall, the scratch Warren)."""
    live = event.scratch_warren(env)
    member = f"bench{os.getpid()}mv"
    live.add_member(member, "instances=64", "cpu=128", "memory=64GiB", "disk=256GiB",
                    "processes=64000", role="admin")
    live.start()
    browser = live.session(member)
    locations = []
    for index in range(count):
        response = browser.submit("/instances/new", None, name=f"e{index}", profile="ontwo",
                                  image="busybox", keys=KEY)
        if response.status_code != 303:
            raise SystemExit(f"request failed: {response.status_code} {response.text[:300]}")
        locations.append(response.headers["Location"])
    for location in locations:
        progress = browser.wait_settled(location, timeout=300)
        if progress["status"] != "ready":
            raise SystemExit(f"an instance failed: {progress}")
    started = time.perf_counter()
    output = live.flask("cluster", "evacuate", EVACUATED, "--yes", "--wait")
    wall = time.perf_counter() - started
    moved = sum(line.startswith("moves") for line in output.splitlines())
    print(f"Warren flask cluster evacuate --wait, {count} instances ({moved} planned to move): "
          f"{wall:.1f} s", flush=True)
    live.flask("cluster", "restore", EVACUATED, "--wait")
    return wall, live


def evacuation(cluster: Cluster, settings, env: dict, count: int) -> float:
    """Raw, Warren, raw again; Warren / the better raw."""
    raws = [raw_evacuation(cluster, count)]
    live = None
    try:
        wall, live = warren_evacuation(cluster, env, count)
    finally:
        if live is not None:
            zone = event.warren_dns.zone_from_settings(settings)
            event.clear_warren(settings, zone, live, None)
            member_projects = [name for name in (item.rsplit("/", 1)[-1] for item in
                               lxd.backend(settings).client().api.projects.get().json()["metadata"])
                               if name.startswith("warren-bench")]
            for project in member_projects:
                event.delete_project(settings, project)
    raws.append(raw_evacuation(cluster, count))
    best = min(raws)
    print(f"evacuation: Warren {wall:.1f} s, lxc alone {' / '.join(f'{raw:.1f}' for raw in raws)} s "
          f"(best {best:.1f}); ratio {wall / best:.3f} (goal <= 1.1)", flush=True)
    return wall / best


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"{error.cmd} failed: {error.stderr or error.stdout}")
