"""Event build time (P3): an event of 35 teams x 3 busybox containers (105
instances) built by Warren, against the same 105 containers made with raw
pylxd in parallel, in the same run.

Warren: the deployed path, gunicorn (4 workers) and the worker process on a
scratch database (a fresh one for each --worker-threads value, given as
WARREN_WORKER_THREADS): from `flask event create` (the event starts in an
hour, so its build begins at once) until every machine's row is ready, read
from the scratch database every 0.1 s. Then (untimed) every machine's name
must resolve on the zone's server.
Baseline, in one member project a warm-up request made (restricted and
limited as Warren makes them), with the same image and profile: create
(under Warren's host id map lock, without which LXD 5.0.2 gives parallel
isolated containers the same range) + start + one TSIG-signed DNS update per
container, on N threads. Swept over --threads, each round on a fresh set of
containers; the best wall time is the baseline. Order: the raw sweep, Warren
for each worker thread count, then the best raw thread count once more (the
better of its two runs counts), so drift affects both alike. Prints every
figure with its errors, and the ratio Warren/best raw.

    bin/bench event [-n 35] [--per-team 3] [--threads 1 --threads 8 ...]
                    [--worker-threads 4 --worker-threads 8 ...] [--image busybox] [--profile small]

(bin/bench runs it on the test bridge, beside a real Warren without touching
its addresses.) The event's host budget checks are lifted for the scratch
Warrens (WARREN_EVENT_MEMORY_SHARE, WARREN_EVENT_MAX_INSTANCES): 105 small
machines' memory limits add up to more than the host has, though busybox
uses a few MiB. Their backups (the worker makes each new machine's first
scheduled backup, as deployed) go to the scratch folder and are deleted
with the machines. Raw addresses come from the top of the static pool,
Warren's from the bottom; as 2 x 105 do not fit the pool of a /24, the two
sets never exist at once: each raw round is deleted before Warren builds,
and Warren's machines are removed before the last raw round. Everything the
run made (LXD projects, DNS names) is removed at the end, and the zone is
checked for names left behind.
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import dns as warren_dns, lxd  # noqa: E402
from app.addresses import static_pool  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.errors import LxdError  # noqa: E402
from app.names import project_name  # noqa: E402
from live import LiveWarren  # noqa: E402
from provision import KEY, wait_resolves  # noqa: E402
from support import remove_names  # noqa: E402

RAW_OWNER = "bench-raw"
DELETE_THREADS = 8  # untimed deletions between rounds
DELETE_ATTEMPTS = 5
PROJECT_THREADS = 4  # team projects deleted at once (each deletes its instances 4 at a time)
POLL_SECONDS = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--teams", type=int, default=35, help="teams (default 35)")
    parser.add_argument("--per-team", type=int, default=3, help="machines per team (default 3)")
    parser.add_argument("--threads", type=int, action="append",
                        help="raw thread count; repeat for several (default: 1 2 4 8 16)")
    parser.add_argument("--worker-threads", type=int, action="append",
                        help="Warren's WARREN_WORKER_THREADS; repeat for several "
                             "(default: the configured value)")
    parser.add_argument("--image", default="busybox", help="image alias (default busybox)")
    parser.add_argument("--profile", default="small", help="profile (default small)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds Warren may take to build the event (default 1800)")
    args = parser.parse_args()
    settings = load_settings()
    count = args.teams * args.per_team
    if not 1 <= args.per_team <= 26 or count > len(static_pool(settings.network_address)):
        raise SystemExit(f"{args.teams} x {args.per_team} machines do not fit: at most 26 per team "
                         f"and {len(static_pool(settings.network_address))} in all")
    measure(settings, args.teams, args.per_team, args.image, args.profile,
            args.threads or [1, 2, 4, 8, 16], args.worker_threads or [settings.worker_threads],
            args.timeout)


def measure(settings, teams: int, per_team: int, image: str, profile: str, sweep: list[int],
            worker_threads: list[int], timeout: float, targets: list[str] | None = None,
            extra_env: dict | None = None) -> dict:
    """The raw sweep, Warren once per worker thread count, the best raw count
    again; the figures (report()). On a cluster, `targets` spreads the raw
    containers over its members by hand (round robin) and `extra_env` is
    given to every scratch Warren."""
    zone = warren_dns.zone_from_settings(settings)
    count = teams * per_team
    member = f"bench{os.getpid()}ev"
    project = project_name(member)
    names = [f"r{index:03d}-{member}" for index in range(count)]  # host-unique LXD names
    addresses = static_pool(settings.network_address)[-count:]  # Warren hands out from the bottom
    warrens: list[tuple[LiveWarren, str | None]] = []  # every scratch Warren and its event
    raw: dict[int, list[tuple[float, list[str]]]] = {}
    built: dict[int, dict] = {}
    print(f"event of {teams} teams x {per_team} {image} ({profile}) = {count} instances; "
          f"raw threads {' '.join(map(str, sweep))}; "
          f"Warren worker threads {' '.join(map(str, worker_threads))}", flush=True)
    try:
        base = scratch_warren(extra_env)
        warrens.append((base, None))
        member_project(base, member, image, profile)

        def raw_round(threads: int) -> None:
            wall, errors = raw_build(settings, zone, project, names, addresses, image, profile,
                                     threads, targets)
            raw.setdefault(threads, []).append((wall, errors))
            print(f"raw pylxd, {threads:2d} threads: {wall:7.1f} s  errors {len(errors)}", flush=True)
            for error in errors:
                print(f"    {error}")
            raw_clear(settings, zone, project, names)

        for threads in sweep:
            raw_round(threads)
        for threads in worker_threads:
            event = f"ev{os.getpid()}w{threads}"
            live = scratch_warren(extra_env)
            warrens.append((live, event))
            built[threads] = warren_build(live, zone, event, teams, per_team, image, profile,
                                          threads, timeout)
            clear_warren(settings, zone, live, event)
        raw_round(best_threads(raw))
    finally:
        for live, _event in warrens:
            stop(live)
        raw_clear(settings, zone, project, names)
        delete_project(settings, project)
        for live, event in warrens:
            clear_warren(settings, zone, live, event)
        left = sweep_names(zone, [live for live, _event in warrens], member)
        print("cleanup: " + (f"{len(left)} DNS names were left behind, now removed: "
                             + " ".join(sorted(left)) if left else "no DNS names left"), flush=True)

    return report(count, raw, built)


def report(count: int, raw: dict, built: dict) -> dict:
    """Every figure beside its baseline, and the ratio; {worker threads: ratio}."""
    print()
    print(f"P3: {count} instances")
    for threads, rounds in raw.items():
        print(f"raw pylxd create+start+DNS, {threads:2d} threads: "
              + ", ".join(f"{wall:.1f} s ({len(errors)} errors)" for wall, errors in rounds))
    threads = best_threads(raw)
    best = best_wall(raw[threads])
    print(f"best raw: {best:.1f} s with {threads} threads")
    for workers, result in built.items():
        print(f"Warren event create -> {result['ready']}/{count} ready, {workers:2d} worker threads: "
              f"{result['wall']:.1f} s  errors {len(result['failed'])}  "
              f"names unresolved {len(result['unresolved'])}")
        print(f"ratio Warren/best raw ({workers} worker threads): {result['wall'] / best:.3f}  "
              "(target <= 1.2)")
    return {workers: result["wall"] / best for workers, result in built.items()}


def best_wall(rounds: list[tuple[float, list[str]]]) -> float:
    """The best wall time of a thread count's error-free rounds (of all, if none is)."""
    clean = [wall for wall, errors in rounds if not errors]
    return min(clean or [wall for wall, _errors in rounds])


def best_threads(raw: dict) -> int:
    """The raw thread count with the best wall time, preferring error-free rounds."""
    return min(raw, key=lambda threads: (all(errors for _wall, errors in raw[threads]),
                                         best_wall(raw[threads])))


def scratch_warren(extra_env: dict | None = None) -> LiveWarren:
    """A LiveWarren whose backups (its worker makes the scheduled ones of
    new instances) go to its own folder, not the real Warren's."""
    live = LiveWarren(tempfile.mkdtemp(prefix="warren-bench-"))
    live.env.update(WARREN_BACKUP_DIR=str(live.folder / "backups"), **(extra_env or {}))
    return live


def member_project(live: LiveWarren, member: str, image: str, profile: str) -> None:
    """The baseline's project: a warm-up request makes the member's project
    and profiles as Warren makes them; the warm-up instance is deleted and
    that Warren stopped, so its address and name are free again."""
    # Room for every baseline instance in one project.
    live.add_member(member, "instances=256", "cpu=512", "memory=512GiB", "disk=4096GiB",
                    "processes=512000", role="admin")  # admins' requests skip the approval queue
    live.start()
    browser = live.session(member)
    response = browser.submit("/instances/new", None, name="warmup", profile=profile, image=image,
                              keys=KEY)
    if response.status_code != 303:
        raise SystemExit(f"warm-up request failed: {response.status_code} {response.text[:500]}")
    location = response.headers["Location"]
    progress = browser.wait_settled(location, timeout=300)
    if progress["status"] != "ready":
        raise SystemExit(f"the warm-up instance failed: {progress}")
    browser.submit(location + "/delete")
    browser.wait_gone(location, timeout=300)
    stop(live)


def raw_build(settings, zone, project: str, names: list[str], addresses: list[str], image: str,
              profile: str, threads: int, targets: list[str] | None = None) -> tuple[float, list[str]]:
    """The baseline: every container created (under the host's id map lock,
    as Warren creates them), started and published, on `threads` threads;
    (wall time, errors). With targets, container i goes to targets[i % len]."""
    lock_path = lxd.idmap_lock_path(lxd.backend(settings))
    placed = {name: targets[index % len(targets)] if targets else None for index, name in enumerate(names)}

    def launch(name: str, address: str) -> str | None:
        try:
            client = lxd.backend(settings).client(project=project)  # one per thread
            instance = lxd.create_instance(
                client, name, image, config={"security.idmap.isolated": "true"},
                devices={"eth0": {"type": "nic", "network": settings.lxd_network, "name": "eth0",
                                  "ipv4.address": address}},
                profiles=[profile], lock_path=lock_path, target=placed[name])
            lxd.start_instance(instance)
            warren_dns.publish_address(zone, f"{name}.raw.{zone.name}", address, RAW_OWNER)
        except Exception as error:  # noqa: BLE001 - counted and printed, the others go on
            return f"{name}: {error}"
        return None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        errors = [error for error in pool.map(launch, names, addresses) if error]
    return time.perf_counter() - started, errors


def raw_clear(settings, zone, project: str, names: list[str]) -> None:
    """Delete the baseline's containers and names (untimed), in parallel."""
    if not lxd.project_exists(lxd.backend(settings).client(), project):
        return

    def clear(name: str) -> None:
        for attempt in range(DELETE_ATTEMPTS):
            try:
                lxd.delete_instance(lxd.backend(settings).client(project=project), name)
                break
            except LxdError:  # LXD 5.0.2, right after the forced stop: "Failed to create instance
                if attempt == DELETE_ATTEMPTS - 1:  # delete operation: A matching non-reusable
                    raise  # operation has now succeeded"; the next try deletes it
                time.sleep(0.5)
        warren_dns.remove_name(zone, f"{name}.raw.{zone.name}", RAW_OWNER)

    with ThreadPoolExecutor(max_workers=DELETE_THREADS) as pool:
        list(pool.map(clear, names))


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def statuses(database: Path) -> dict[str, int]:
    """status -> count of the scratch Warren's instance rows (read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT status, count(*) FROM instances GROUP BY status").fetchall())


def warren_build(live: LiveWarren, zone, event: str, teams: int, per_team: int, image: str,
                 profile: str, worker_threads: int, timeout: float) -> dict:
    """One event built by a fresh Warren: from `flask event create` until
    every machine is ready or failed; then its names are checked."""
    count = teams * per_team
    live.env.update(WARREN_WORKER_THREADS=str(worker_threads), WARREN_EVENT_MEMORY_SHARE="1000",
                    WARREN_EVENT_MAX_INSTANCES=str(max(count, 150)))
    live.start()
    database = live.folder / "warren.sqlite3"
    machines = "\n".join(f"{chr(ord('a') + index)} {profile} {image}" for index in range(per_team))
    moment = datetime.now(timezone.utc)
    started = time.perf_counter()
    live.flask("event", "create", event, "--teams", str(teams), "--machines", machines,
               "--starts", utc(moment + timedelta(hours=1)), "--ends", utc(moment + timedelta(days=2)),
               "--keys", KEY, "--grace-hours", "0", "--keep", "none")
    created = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    while True:
        counts = statuses(database)
        if counts.get("ready", 0) + counts.get("failed", 0) >= count:
            break
        if time.monotonic() > deadline or any(p.poll() is not None for p in live.processes):
            raise SystemExit(f"Warren did not build {event} ({worker_threads} worker threads) "
                             f"within {timeout:.0f} s: {counts}; its log ends: "
                             + (live.folder / "processes.log").read_text()[-3000:])
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT project, name, lxd_name, fqdn, status, error FROM instances "
                          "ORDER BY project, name").fetchall()
        backed_up = db.execute("SELECT count(*) FROM backups WHERE reason = 'schedule' "
                               "AND state = 'done'").fetchone()[0]
    failed = [row for row in rows if row[4] == "failed"]
    print(f"Warren, {worker_threads:2d} worker threads: {wall:7.1f} s  "
          f"{counts.get('ready', 0)}/{count} ready  errors {len(failed)}  "
          f"(the create command took {created:.1f} s; {backed_up} scheduled backups made meanwhile)",
          flush=True)
    for project, name, lxd_name, _fqdn, _status, error in failed:
        print(f"    {project} {name} ({lxd_name}): {error}")
    unresolved = []
    for _project, _name, _lxd_name, fqdn, status, _error in rows:
        if status == "ready":
            try:
                wait_resolves(zone, fqdn, timeout=5)
            except SystemExit:
                unresolved.append(fqdn)
    print(f"    names: {len(rows) - len(failed) - len(unresolved)}/{len(rows) - len(failed)} "
          f"ready machines' names resolve" + (f"; not: {' '.join(unresolved)}" if unresolved else ""),
          flush=True)
    return {"wall": wall, "ready": counts.get("ready", 0), "failed": failed,
            "unresolved": unresolved}


def stop(live: LiveWarren) -> None:
    """Stop a scratch Warren if it runs (killed when it does not stop)."""
    if not live.processes:
        return
    try:
        live.stop()
    except subprocess.TimeoutExpired:
        for process in live.processes:
            process.kill()
            process.wait()
        live.processes.clear()


def clear_warren(settings, zone, live: LiveWarren, event: str | None) -> None:
    """Remove an event's machines without Warren: stop the scratch Warren
    (nothing rebuilds what goes), delete the team projects, remove the names
    its database knows."""
    stop(live)
    if event:
        prefix = project_name(f"{event}-")
        listed = lxd.backend(settings).client().api.projects.get().json()["metadata"]
        projects = [name for name in (item.rsplit("/", 1)[-1] for item in listed)
                    if name.startswith(prefix)]
        with ThreadPoolExecutor(max_workers=PROJECT_THREADS) as pool:
            list(pool.map(lambda name: delete_project(settings, name), projects))
    if (live.folder / "warren.sqlite3").exists():
        remove_names(live.folder / "warren.sqlite3", zone)
    shutil.rmtree(live.folder / "backups", ignore_errors=True)  # the database and log stay


def delete_project(settings, project: str) -> None:
    """lxd.delete_project, tried again after LXD's transient refusal (see raw_clear)."""
    for attempt in range(DELETE_ATTEMPTS):
        try:
            lxd.delete_project(lxd.backend(settings), project)
            return
        except LxdError:
            if attempt == DELETE_ATTEMPTS - 1:
                raise
            time.sleep(0.5)


def sweep_names(zone, warrens: list[LiveWarren], member: str) -> list[str]:
    """Names of this run still in the zone (by owner marker): removed, and returned."""
    installations = set()
    for live in warrens:
        database = live.folder / "warren.sqlite3"
        if database.exists():
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                found = db.execute("SELECT value FROM meta WHERE key = 'installation'").fetchone()
            if found:
                installations.add(found[0])
    left = [(fqdn, owner) for fqdn, owner in warren_dns.owned_names(zone).items()
            if owner.rsplit("@", 1)[-1] in installations
            or (owner == RAW_OWNER and fqdn.endswith(f"-{member}.raw.{zone.name}"))]
    for fqdn, owner in left:
        warren_dns.remove_name(zone, fqdn, owner)
    return [fqdn for fqdn, _owner in left]


if __name__ == "__main__":
    main()
