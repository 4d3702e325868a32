"""What the worker-crash tests share (tests/test_crashes*.py): a live Warren
without a worker of its own, a worker that SIGKILLs itself at a named step
and a fresh one that recovers, the provisioning rounds, and the check that
nothing is orphaned, DNS is exactly the desired set and quota counts are
exact (real LXD, real named). The steps are split over two files so that
bin/test runs them side by side."""
import os
import sqlite3

from app import dns as warren_dns, lxd
from app.names import project_name
from live import LiveWarren

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))  # a smaller number only when iterating
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d crash@test"


def live_warren(tmp_path_factory, settings, label: str):
    """A live Warren with one member of ample quota; yields it, then removes
    the member's project."""
    warren = LiveWarren(tmp_path_factory.mktemp(label), worker=False)
    warren.member = f"{label}{os.getpid()}"
    warren.add_member(warren.member, "instances=200", "cpu=200", "memory=200GiB", "disk=1000GiB",
                      "processes=200000")
    warren.start()
    warren.browser = warren.session(warren.member)
    yield warren
    warren.stop()
    lxd.delete_project(lxd.backend(settings), project_name(warren.member))


def killed_at(live, step, action):
    """Run a worker that dies at `step` while `action()` gives it work."""
    faulty = live.run_worker(fault_at=step)
    result = action()
    assert faulty.wait(timeout=120) == -9, f"the worker did not die at {step}"
    live.processes.remove(faulty)
    return result


def recovered(live, wait):
    healthy = live.run_worker()
    try:
        return wait()
    finally:
        live.stop_worker(healthy)


def provision_rounds(live, step: str) -> None:
    """ROUNDS requests, each with the worker killed at `step` and a fresh
    one finishing it."""
    for number in range(ROUNDS):
        token = live.browser.token("/instances/new")
        location = killed_at(live, step, lambda: live.browser.submit(
            "/instances/new", token, name=f"{step}-{number}", profile="small", image="busybox",
            keys=KEY).headers["Location"])
        progress = recovered(live, lambda: live.browser.wait_settled(location))
        assert progress["status"] == "ready", progress


def assert_consistent(live, settings, zone):
    with sqlite3.connect(live.folder / "warren.sqlite3") as db:
        rows = db.execute("SELECT lxd_name, fqdn, ipv4, status FROM instances").fetchall()
        open_jobs = db.execute("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')").fetchone()[0]
        installation = db.execute("SELECT value FROM meta WHERE key = 'installation'").fetchone()[0]
    assert open_jobs == 0
    assert all(status == "ready" for *_, status in rows), rows
    scoped = lxd.backend(settings).client(project=project_name(live.member))
    in_lxd = set(lxd.instance_states(scoped))
    assert in_lxd == {lxd_name for lxd_name, *_ in rows}  # no orphans either way
    owned = {fqdn for fqdn, owner in warren_dns.owned_names(zone).items()
             if owner == f"{live.member}@{installation}"}
    assert owned == {fqdn for _, fqdn, _, _ in rows}  # DNS is exactly the desired set
    for _, fqdn, ipv4, _ in rows:
        assert warren_dns.lookup(zone, fqdn) == [ipv4]
    addresses = [ipv4 for _, _, ipv4, _ in rows]
    assert len(set(addresses)) == len(addresses)
    usage = live.browser.get(live.base + "/usage").text
    assert f"<td>instances</td><td>{len(rows)}</td>" in usage  # quota counts are exact
