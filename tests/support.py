"""Helpers the test files share: reading CSRF tokens, driving the member
forms of an in-process app, waiting for the worker, and finding the LXD
instance behind a member's instance."""
import re
import sqlite3
import subprocess
import time
from datetime import timedelta

import pytest

from app import dns, lxd
from app.names import dns_owner, member_of, project_name

CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "correct horse battery"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
       "member@laptop")
TERMINAL = ("ready", "failed", "delete-failed", "denied", "awaiting-approval")


def advance(fixed_clock, **delta):
    """Move the controllable clock (the fixed_clock fixture) forward."""
    fixed_clock.set_now(fixed_clock.now() + timedelta(**delta))


def csrf_token(html: str) -> str:
    """The CSRF token embedded in a rendered form."""
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def wait_until(check, timeout=30, message="condition", step=0.2):
    """Poll check() until it returns something true; that value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"{message} not reached in {timeout}s")


def request_instance(client, expect=303, **fields):
    """Submit the request form like a browser does."""
    token = csrf_token(client.get("/instances/new").get_data(as_text=True))
    data = {"name": "web", "profile": "small", "image": "busybox", "keys": KEY, "csrf_token": token}
    data.update(fields)
    response = client.post("/instances/new", data=data)
    assert response.status_code == expect, response.get_data(as_text=True)[:2000]
    return response


def wait_done(client, location, timeout=90):
    """Poll the status page's progress feed until the request settles."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = client.get(f"{location}/progress").get_json()
        if progress["status"] in TERMINAL:
            return progress
        time.sleep(0.1)
    pytest.fail(f"{location} did not settle in {timeout}s: {progress}")


def wait_gone(client, location, timeout=60):
    """Poll until the instance's page is gone (deleted)."""
    wait_until(lambda: client.get(f"{location}/progress").status_code == 404, timeout,
               f"deletion of {location}", step=0.1)


def wait_event(client, location, text, timeout=60):
    """Poll until the instance's history has an event containing text."""
    def found():
        events = client.get(f"{location}/progress").get_json()["events"]
        return events if any(text in event["message"] for event in events) else None
    return wait_until(found, timeout, f"an event {text!r} of {location}", step=0.1)


def post_action(client, location, action):
    """Press an instance's action button (start, stop, restart, delete, ...)."""
    token = csrf_token(client.get("/").get_data(as_text=True))
    return client.post(f"{location}/{action}", data={"csrf_token": token})


def launch(client, **fields):
    """Request, wait until ready, return (location, progress)."""
    location = request_instance(client, **fields).headers["Location"]
    progress = wait_done(client, location)
    assert progress["status"] == "ready", progress
    return location, progress


def dig_status(settings, name):
    """The rcode named gives for an A query (NOERROR, NXDOMAIN, ...)."""
    out = subprocess.run(["dig", "+time=2", "+tries=1", "-p", str(settings.dns_port),
                          f"@{settings.dns_server}", name, "A"], capture_output=True, text=True).stdout
    return out.split("status: ", 1)[1].split(",", 1)[0]


def _backend(settings, socket_path=None):
    """The settings' LXD, or the daemon at socket_path (the VM test daemon)."""
    return lxd.Backend(socket_path=socket_path) if socket_path else lxd.backend(settings)


def lxd_name_of(settings, client, name="web", socket_path=None):
    """The LXD name of a member's instance, found by the hostname Warren gave it."""
    scoped = _backend(settings, socket_path).client(project_name(client.username))
    found = [lxd_name for lxd_name, config in lxd.instance_configs(scoped).items()
             if (config or {}).get("user.warren.hostname") == name]
    return found[0] if found else None


def member_instance(settings, client, name="web", socket_path=None):
    """The LXD instance behind a member's instance name, or None."""
    lxd_name = lxd_name_of(settings, client, name, socket_path)
    scoped = _backend(settings, socket_path).client(project_name(client.username))
    return lxd.get_instance(scoped, lxd_name) if lxd_name else None


def instance_row(db, user_id: int, name: str, status: str, ipv4: str | None,
                 fqdn: str | None = None) -> int:
    """An instance row with no LXD instance behind it (for pure logic); its id."""
    from app import store
    row_id = store.new_id(db, "instances")
    db["instances"].insert({
        "id": row_id, "lxd_name": f"{name}-{row_id}", "user_id": user_id, "name": name,
        "project": "p", "profile": "small", "image": "busybox", "instance_type": "container",
        "fqdn": fqdn or f"{name}.{user_id}.zone", "ipv4": ipv4, "ssh_keys": "", "cpu": 1, "memory": 1,
        "disk": 1, "processes": 1, "status": status, "created_at": "x", "updated_at": "x"})
    return row_id


def run_in(instance, *command):
    """Run a command in an instance; its stdout, stripped (it must succeed)."""
    code, out, err = lxd.execute(instance, list(command))
    assert code == 0, err
    return out.strip()


def open_jobs(database) -> int:
    """Jobs of a (live) Warren's database that are waiting or running."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')"
                          ).fetchone()[0]


def remove_names(database, zone) -> None:
    """Remove the DNS names of every instance a (live) Warren's database knows."""
    with sqlite3.connect(database) as db:
        installation = db.execute("SELECT value FROM meta WHERE key = 'installation'").fetchone()[0]
        rows = db.execute("SELECT fqdn, project FROM instances").fetchall()
    for fqdn, project in rows:
        dns.remove_name(zone, fqdn, dns_owner(member_of(project), installation))


def console_operations(settings, username: str, name: str) -> list[str]:
    """LXD's running console operations (from /1.0/operations) of a
    member's instance, found by the hostname Warren gave it."""
    project = project_name(username)
    found = [lxd_name for lxd_name, config in
             lxd.instance_configs(lxd.backend(settings).client(project=project)).items()
             if (config or {}).get("user.warren.hostname") == name]
    assert found, f"{username} has no instance {name} in LXD"
    return lxd.console_operations(lxd.backend(settings), project, found[0])


def sweep_bridge(socket: str, bridge: str) -> list[str]:
    """Delete every instance (in any project of the daemon at socket) with a
    NIC on a test-only bridge: leftovers of an interrupted earlier test.
    Never call it with a bridge a real Warren uses."""
    from app import lxd
    swept = []
    daemon = lxd.Backend(socket_path=socket)
    for project in daemon.client().api.projects.get().json()["metadata"]:
        name = project.rsplit("/", 1)[-1]
        scoped = daemon.client(name)
        for instance, facts in lxd.instance_devices(scoped).items():
            if any(device.get("network") == bridge or device.get("parent") == bridge
                   for device in facts["expanded_devices"].values()):
                lxd.delete_instance(scoped, instance)
                swept.append(f"{name}/{instance}")
    return swept


def api_token(app, username: str, scope: str = "member", days: int = 30) -> dict:
    """Headers with a new API token of the user (made through the tokens service)."""
    from app import accounts, tokens
    with app.test_request_context():
        _row, secret = tokens.create(accounts.find_user(username), f"t-{scope}-{time.monotonic_ns()}",
                                     scope, days)
    return {"Authorization": f"Bearer {secret}"}


def probe_project(settings, name: str, quota, probe: dict):
    """An LXD project configured exactly as Warren makes a member's (for
    the quota), holding one profile `probe` made from a profile's fields;
    the project's client. The caller deletes the project."""
    import yaml

    from app import projects
    from app.profiles import parse_profile
    lxd.ensure_project(lxd.backend(settings).client(), name,
                       projects.project_config(quota, settings.lxd_network, "tests"), "probe")
    scoped = lxd.backend(settings).client(project=name)
    profile = parse_profile("probe", yaml.safe_dump(probe), "probe.yaml")
    lxd.ensure_profile(scoped, "probe", profile.lxd_config(),
                       profile.lxd_devices(settings.lxd_storage_pool, settings.lxd_network), "probe")
    return scoped


def idmap_lock() -> str:
    """The daemon's id map lock (app/lxd/idmaps.py): a test that creates an
    isolated container itself takes it too, or its creation and a Warren's
    running beside it can get one range, or one LXD cannot start."""
    from app.config import load_settings
    return lxd.idmap_lock_path(lxd.backend(load_settings()))
