"""Snapshots of members' instances, on the real LXD and its btrfs pool,
through the member pages and the worker: take, list and delete; a restore
brings back a file deleted after the snapshot (and keeps newer snapshots,
as the confirmation says); the manual snapshot cap; the disk quota with
snapshot space in it, refused by Warren and then by LXD; a snapshot that
LXD's own schedule takes; another member's snapshot routes are 404.

One member's two busybox instances serve the whole module: `web` on the
small profile, and `tick` on a copy of it whose schedule fires every
minute (started first, so the minute passes while the other tests run)."""
import re
import time
import uuid
from datetime import datetime, timedelta

import pytest

from app import accounts, dns, lxd, projects, quotas, shares, snapshots
from app.names import project_name
from app.store import get_db
from app.worker import Worker
from conftest import Auth, make_app, post_form
from support import PASSWORD, launch, run_in, wait_until

pytestmark = [pytest.mark.lxd, pytest.mark.named, pytest.mark.slow]
# LXD 5.0's scheduler looks at every instance's snapshots.schedule once a
# minute, on the minute; '* * * * *' is the fastest real schedule there is,
# so a scheduled snapshot appears within about a minute of the start (two
# minutes is the bound, for a loaded machine).
SCHEDULE_BOUND = 130
TICKING = """
  snapshots.schedule: '* * * * *'
  snapshots.expiry: 1d
  snapshots.pattern: auto-%d
"""


class Env:
    """The module's Warren (app and worker), member A's two instances, member B."""


def _member(app, username):
    with app.app_context():
        accounts.create_user(username, PASSWORD)
    client = app.test_client()
    Auth(client).login(username)
    client.username = username
    return client


@pytest.fixture(scope="module")
def env(tmp_path_factory, settings, busybox_image):
    folder = tmp_path_factory.mktemp("snapshots")
    app = make_app(folder, own_profiles=True)
    small = (folder / "profiles" / "small.yaml").read_text()
    assert small.rstrip().endswith("boot.autostart: true")
    (folder / "profiles" / "ticking.yaml").write_text(small.rstrip() + TICKING)
    env = Env()
    env.app, env.worker = app, Worker(app).start()
    env.a, env.b = _member(app, f"s{uuid.uuid4().hex[:8]}"), _member(app, f"s{uuid.uuid4().hex[:8]}")
    try:
        env.tick, _ = launch(env.a, name="tick", profile="ticking")
        env.ticking_since = time.monotonic()
        env.web, _ = launch(env.a, name="web")
        yield env
    finally:
        env.worker.stop()
        with app.app_context():
            rows = [(row["fqdn"], row["project"]) for row in get_db()["instances"].rows]
            zone = dns.zone_from_settings(settings)
            for fqdn, project in rows:
                dns.remove_name(zone, fqdn, projects.dns_owner(project.removeprefix("warren-")))
        for client in (env.a, env.b):
            lxd.delete_project(lxd.backend(settings), project_name(client.username))
            projects.forget_applied(project_name(client.username))


def instance_id(location: str) -> int:
    return int(location.rsplit("/", 1)[1])


def page_of(location: str) -> str:
    return f"{location}/snapshots"


def listed(env, location) -> list[str]:
    """The snapshot names the member's page lists."""
    html = env.a.get(page_of(location)).get_data(as_text=True)
    return re.findall(r'<tr id="snapshot-([^"]+)">', html)


def in_lxd(env, settings, name="web") -> dict:
    """Name -> snapshot as LXD lists it, for one of A's instances."""
    with env.app.app_context():
        row = get_db()["instances"].rows_where("name = ? AND project = ?",
                                               [name, project_name(env.a.username)])
        lxd_name = next(iter(row))["lxd_name"]
    scoped = lxd.backend(settings).client(project=project_name(env.a.username))
    return {item["name"]: item for item in lxd.list_snapshots(scoped, lxd_name)}


def lxd_instance(env, settings, name="web"):
    with env.app.app_context():
        row = next(iter(get_db()["instances"].rows_where(
            "name = ? AND project = ?", [name, project_name(env.a.username)])))
    return lxd.get_instance(lxd.backend(settings).client(project=project_name(env.a.username)),
                            row["lxd_name"]), row


def settled(env, location) -> None:
    """Wait until the instance's jobs are done."""
    def idle():
        with env.app.app_context():
            return not get_db()["jobs"].count_where(
                "instance_id = ? AND state IN ('pending', 'running')", [instance_id(location)])
    wait_until(idle, timeout=60, message="the snapshot jobs done")


def take(env, location, name="", expect=303):
    response = post_form(env.a, page_of(location), {"name": name}, expect=expect)
    settled(env, location)
    return response


def test_a_member_takes_lists_and_deletes_snapshots(env, settings):
    take(env, env.web, "first")
    take(env, env.web)  # an automatic name
    names = listed(env, env.web)
    automatic = [name for name in names if name != "first"]
    assert "first" in names and len(automatic) == 1
    assert re.fullmatch(r"snap-\d{8}-\d{6}", automatic[0])
    assert {"first", automatic[0]} <= set(in_lxd(env, settings))
    html = env.a.get(page_of(env.web)).get_data(as_text=True)
    assert "manual" in html and "UTC" in html and 'class="size"' in html

    bad = post_form(env.a, page_of(env.web), {"name": "no/such name"}, expect=422)
    assert "Use 1 to 63 letters" in bad.get_data(as_text=True)
    again = post_form(env.a, page_of(env.web), {"name": "first"}, expect=422)
    assert "has a snapshot named first already" in again.get_data(as_text=True)

    for name in ("first", automatic[0]):
        post_form(env.a, page_of(env.web), {}, url=f"{page_of(env.web)}/{name}/delete", expect=303)
    settled(env, env.web)
    assert not {"first", automatic[0]} & set(in_lxd(env, settings))
    assert not {"first", automatic[0]} & set(listed(env, env.web))
    with env.app.app_context():
        actions = [row["action"] for row in get_db()["audit"].rows_where(
            "action LIKE 'snapshot.%'")]
    assert actions.count("snapshot.take") == 2 and actions.count("snapshot.delete") == 2


def test_a_restore_brings_back_a_deleted_file_and_keeps_newer_snapshots(env, settings):
    instance, row = lxd_instance(env, settings)
    run_in(instance, "sh", "-c", "echo kept > /root/precious && sync")
    take(env, env.web, "before")
    run_in(instance, "rm", "/root/precious")
    take(env, env.web, "after")

    restore = f"{page_of(env.web)}/before/restore"
    text = env.a.get(restore).get_data(as_text=True)
    assert "is running: it is shut down" in text
    assert "Newer snapshots (after) are kept" in text and "does not delete them" in text
    refused = post_form(env.a, restore, {}, expect=422)
    assert "Confirm that you accept this" in refused.get_data(as_text=True)
    assert "before" in listed(env, env.web)  # nothing happened

    started = time.monotonic()
    post_form(env.a, restore, {"confirm": "y"}, expect=303)
    settled(env, env.web)
    print(f"restore of a running busybox: {time.monotonic() - started:.1f} s")
    instance, _ = lxd_instance(env, settings)
    assert instance.status == "Running"
    assert run_in(instance, "cat", "/root/precious") == "kept"
    assert {"before", "after"} <= set(in_lxd(env, settings))  # btrfs: newer ones are kept
    assert instance.devices["eth0"]["ipv4.address"] == row["ipv4"]  # Warren's NIC again
    with env.app.app_context():
        events = [event["message"] for event in get_db()["events"].rows_where(
            "instance_id = ?", [row["id"]])]
    assert "Restored to snapshot before and started again." in events
    for name in ("before", "after"):
        post_form(env.a, page_of(env.web), {}, url=f"{page_of(env.web)}/{name}/delete", expect=303)
    settled(env, env.web)


def _set_overrides(env, overrides: dict) -> None:
    with env.app.app_context():
        user = accounts.find_user(env.a.username)
        boss = {"username": "boss"}
        shares.set_quota(boss, env.a.username, user["tier"], overrides)


def test_the_manual_snapshot_cap(env, settings):
    _set_overrides(env, {"snapshots": 1})
    try:
        take(env, env.web, "only")
        refused = post_form(env.a, page_of(env.web), {"name": "one-more"}, expect=409)
        assert "manual snapshots: you hold 1 of your 1" in refused.get_data(as_text=True)
        assert "one-more" not in in_lxd(env, settings)
    finally:
        _set_overrides(env, {})
        post_form(env.a, page_of(env.web), {}, url=f"{page_of(env.web)}/only/delete", expect=303)
        settled(env, env.web)


def test_a_snapshot_over_the_disk_quota_is_refused_by_warren_and_then_by_lxd(env, settings):
    with env.app.app_context():
        roots = sum(row["disk"] for row in get_db()["instances"].rows_where(
            "project = ?", [project_name(env.a.username)]))
    _set_overrides(env, {"disk": roots + 16 * 1024 ** 2})  # 16 MiB for snapshots
    instance, _ = lxd_instance(env, settings)

    def restriction():
        return lxd.backend(settings).client().projects.get(
            project_name(env.a.username)).config["restricted.snapshots"]
    assert restriction() == "allow"
    try:
        run_in(instance, "sh", "-c", "dd if=/dev/urandom of=/root/big bs=1M count=24 && sync")
        take(env, env.web, "pinned")  # costs nothing yet: it shares everything
        run_in(instance, "sh", "-c", "rm /root/big && sync")  # now only the snapshot holds it

        refused = post_form(env.a, page_of(env.web), {"name": "too-much"}, expect=409)
        text = refused.get_data(as_text=True)
        assert "Over quota — disk" in text and "snapshots count against it" in text
        held = in_lxd(env, settings)["pinned"]["size"]
        assert held >= 24 * 1024 ** 2, held
        usage = env.a.get("/usage").get_data(as_text=True)
        assert "disk (root disks and snapshots)" in usage
        assert re.search(r'class="snapshot-bytes">2[45]\.\d\dMiB<', usage), usage

        with env.app.app_context():  # the worker's pass: LXD refuses new snapshots too
            assert snapshots.measure_all(get_db(), settings) == [
                f"{env.a.username}: new snapshots refused (disk full)"]
        assert restriction() == "block"
        with pytest.raises(Exception, match="snapshot creation"):
            instance.snapshots.create("behind-warrens-back", wait=True)
    finally:
        post_form(env.a, page_of(env.web), {}, url=f"{page_of(env.web)}/pinned/delete", expect=303)
        settled(env, env.web)
        assert restriction() == "allow"  # the deletion gave room again
        _set_overrides(env, {})


def test_member_b_gets_404_for_the_snapshot_routes_of_a(env, settings):
    take(env, env.web, "mine")
    base = page_of(env.web)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"',
                      env.b.get("/").get_data(as_text=True))[1]
    for method, url in (("GET", base), ("POST", base), ("GET", f"{base}/mine/restore"),
                        ("POST", f"{base}/mine/restore"), ("POST", f"{base}/mine/delete")):
        response = env.b.open(url, method=method, data={"csrf_token": token, "confirm": "y",
                                                        "name": "theirs"})
        assert response.status_code == 404, (method, url)
    assert env.a.get(f"{base}/nosuch/restore").status_code == 404
    assert "mine" in in_lxd(env, settings)
    post_form(env.a, base, {}, url=f"{base}/mine/delete", expect=303)
    settled(env, env.web)


def test_a_scheduled_snapshot_appears_when_lxds_schedule_fires(env, settings):
    html = env.a.get(page_of(env.tick)).get_data(as_text=True)
    assert "<code>* * * * *</code>" in html and "<code>1d</code>" in html
    assert "<code>auto-%d</code>" in html

    def scheduled():
        return [item for name, item in in_lxd(env, settings, "tick").items()
                if name.startswith("auto-")]
    remaining = SCHEDULE_BOUND - (time.monotonic() - env.ticking_since)
    found = wait_until(scheduled, timeout=max(remaining, 5), step=2,
                       message="a snapshot from the profile's schedule")
    print(f"first scheduled snapshot after {time.monotonic() - env.ticking_since:.0f} s")
    taken, expires = (datetime.strptime(found[0][key][:19], "%Y-%m-%dT%H:%M:%S")
                      for key in ("created_at", "expires_at"))
    assert abs(expires - taken - timedelta(days=1)) < timedelta(minutes=1)  # snapshots.expiry: 1d
    html = env.a.get(page_of(env.tick)).get_data(as_text=True)
    assert f'<tr id="snapshot-{found[0]["name"]}">' in html and "scheduled" in html
    with env.app.app_context():  # not a manual snapshot: the cap does not count it
        assert quotas.usage(get_db(), accounts.find_user(env.a.username)["id"])["snapshots"] == 0
