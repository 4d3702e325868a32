"""Members request instances through the web form; the worker builds them in
the real LXD and publishes them on the real named."""
import json
import time

import pytest

from app import addresses, dns as warren_dns, lxd, quotas
from app.names import project_name
from app.store import get_db
from support import KEY, dig_status, launch, member_instance, post_action, request_instance, \
    run_in, wait_done, wait_gone


def cgroup_value(instance, v2_name, v1_path):
    """A cgroup file as the instance sees it, on a v2 or a v1/hybrid host."""
    code, out, _ = lxd.execute(instance, ["cat", f"/sys/fs/cgroup/{v2_name}"])
    return out.strip() if code == 0 else run_in(instance, "cat", f"/sys/fs/cgroup/{v1_path}")


def test_request_builds_a_running_unprivileged_limited_instance_that_resolves(
        app, settings, worker, members, dig):
    alice = members()
    response = request_instance(alice)
    location = response.headers["Location"]
    page = alice.get(location).get_data(as_text=True)
    assert "/progress" in page  # the status page follows progress by itself
    progress = wait_done(alice, location)
    assert progress["status"] == "ready"
    assert [event["step"] for event in progress["events"]] == \
        ["queued", "creating", "starting", "publishing", "ready"]

    instance = member_instance(settings, alice)
    assert instance.status == "Running"
    assert instance.config["security.idmap.isolated"] == "true"
    assert instance.config["user.warren.owner"] == alice.username
    inside, outside, _count = (int(v) for v in run_in(instance, "cat", "/proc/self/uid_map").split())
    assert inside == 0 and outside != 0
    assert run_in(instance, "hostname") == "web"
    assert cgroup_value(instance, "memory.max", "memory/memory.limit_in_bytes") == str(512 * 1024 ** 2)
    assert cgroup_value(instance, "pids.max", "pids/pids.max") == "500"
    assert KEY in run_in(instance, "cat", "/root/.ssh/authorized_keys")
    # busybox takes them through its LXD template (no file push): owner-only, root's
    assert run_in(instance, "stat", "-c", "%a %u", "/root/.ssh/authorized_keys") == "600 0"
    assert instance.config["user.warren.keys"] == KEY + "\n"
    fqdn = f"web.{alice.username}.{settings.dns_zone}"
    assert progress["fqdn"] == fqdn
    assert dig(fqdn) == [progress["ipv4"]]
    assert progress["ipv4"] in addresses.static_pool(settings.network_address)
    dashboard = alice.get("/").get_data(as_text=True)
    assert "Running" in dashboard and fqdn in dashboard and progress["ipv4"] in dashboard
    assert instance.config["limits.cpu.priority"] == "10"
    usage = alice.get("/usage").get_data(as_text=True)
    assert "<td>instances</td><td>1</td><td>4</td>" in usage
    assert "<td>memory</td><td>512MiB</td><td>6GiB</td>" in usage

    assert post_action(alice, location, "delete").status_code == 303
    wait_gone(alice, location)
    assert member_instance(settings, alice) is None
    assert dig_status(settings, fqdn) == "NXDOMAIN"
    with app.app_context():
        assert addresses.allocate(get_db(), settings.network_address) == progress["ipv4"]


def test_power_actions(settings, worker, members):
    alice = members()
    location, _ = launch(alice)
    dashboard = alice.get("/").get_data(as_text=True)
    assert f"{location}/stop" in dashboard and f"{location}/start" not in dashboard
    for action, expected in (("stop", "Stopped"), ("start", "Running"), ("restart", "Running")):
        assert post_action(alice, location, action).status_code == 303
        deadline = time.monotonic() + 60
        while True:
            events = alice.get(f"{location}/progress").get_json()["events"]
            if events[-1]["step"] == action:
                break
            assert time.monotonic() < deadline, events
            time.sleep(0.1)
        assert events[-1]["message"] == f"{action.capitalize()} done."
        assert member_instance(settings, alice).status == expected


@pytest.mark.slow
def test_debian_instance_receives_keys_through_cloud_init(settings, worker, members, dig,
                                                          debian_image):
    alice = members()
    _location, progress = launch(alice, name="box", image=debian_image)
    instance = member_instance(settings, alice, "box")
    deadline = time.monotonic() + 120
    while "status: done" not in run_in(instance, "cloud-init", "status"):
        assert time.monotonic() < deadline, "cloud-init did not finish"
        time.sleep(1)
    assert KEY in run_in(instance, "cat", "/root/.ssh/authorized_keys")
    assert KEY in run_in(instance, "cat", "/home/debian/.ssh/authorized_keys")
    assert run_in(instance, "hostname") == "box"
    assert dig(f"box.{alice.username}.{settings.dns_zone}") == [progress["ipv4"]]


def idmap(instance) -> range:
    mapping = json.loads(instance.config["volatile.idmap.current"])
    uid = next(entry for entry in mapping if entry["Isuid"])
    return range(uid["Hostid"], uid["Hostid"] + uid["Maprange"])


def test_members_get_non_overlapping_idmaps(settings, worker, members):
    alice, bob = members(), members()
    launch(alice)
    launch(bob)
    first, second = idmap(member_instance(settings, alice)), idmap(member_instance(settings, bob))
    assert first.start != 0 and second.start != 0
    assert first.stop <= second.start or second.stop <= first.start


def test_member_project_is_restricted_mirrors_the_quota_and_holds_the_profiles(settings, worker,
                                                                                members):
    alice = members()
    launch(alice)
    client = lxd.backend(settings).client()
    project = client.projects.get(project_name(alice.username))
    assert project.config["restricted"] == "true"
    assert project.config["features.profiles"] == "true"
    assert project.config["features.images"] == "false"
    assert project.config["restricted.containers.nesting"] == "allow"
    for key, value in quotas.TIERS["full"].lxd_limits().items():
        assert project.config[key] == value
    scoped = lxd.backend(settings).client(project=project.name)
    small = scoped.profiles.get("small")
    assert small.config["limits.memory"] == "512MiB"
    assert small.devices["root"]["size"] == "4GiB"
    assert scoped.profiles.get("nested").config["security.nesting"] == "true"


def test_quota_changes_reach_the_lxd_project_at_once(app, settings, worker, members):
    alice = members()
    launch(alice)
    result = app.test_cli_runner().invoke(args=["user", "set-quota", alice.username,
                                                "memory=8GiB", "instances=5"])
    assert result.exit_code == 0, result.output
    assert f"LXD project {project_name(alice.username)}: limits updated" in result.output
    project = lxd.backend(settings).client().projects.get(project_name(alice.username))
    assert project.config["limits.memory"] == "8GiB"
    assert project.config["limits.instances"] == "5"
    assert member_instance(settings, alice).config["limits.cpu.priority"] == "10"
    result = app.test_cli_runner().invoke(args=["user", "set-quota", alice.username, "--tier", "half"])
    assert result.exit_code == 0, result.output
    assert "limits updated" in result.output, result.output
    assert member_instance(settings, alice).config["limits.cpu.priority"] == "5"  # applied live


def test_half_share_gets_no_nesting(settings, worker, members):
    bob = members(tier="half")
    assert "nested" not in bob.get("/instances/new").get_data(as_text=True)
    response = request_instance(bob, expect=422, profile="nested")
    assert "Choose one of: burst, small" in response.get_data(as_text=True)
    launch(bob)
    project = lxd.backend(settings).client().projects.get(project_name(bob.username))
    assert project.config["restricted.containers.nesting"] == "block"
    assert member_instance(settings, bob).config["limits.cpu.priority"] == "5"  # half share
    assert not lxd.backend(settings).client(project=project.name).profiles.exists("nested")


def test_form_reports_every_error_next_to_its_field_and_keeps_input(members):
    alice = members()
    response = request_instance(alice, expect=422, name="Bad_Name!", image="no-such-image",
                                keys="ssh-rsa AAAAjunk me@host\nnot a key at all")
    page = response.get_data(as_text=True)
    assert 'value="Bad_Name!"' in page
    assert "Use lower-case letters" in page
    assert "The small profile offers: debian-12, busybox." in page
    assert "Line 1 is not a valid public key" in page and "Line 2 starts with" in page
    assert "ssh-rsa AAAAjunk me@host" in page  # the pasted text is kept
    with alice.application.app_context():
        assert get_db()["instances"].count == 0


def test_burst_instances_carry_their_lease(app, worker, members):
    from datetime import datetime, timedelta, timezone
    alice = members()
    location, _ = launch(alice, name="build", profile="burst")
    with app.app_context():
        row = get_db()["instances"].get(int(location.rsplit("/", 1)[1]))
    expires = datetime.fromisoformat(row["lease_expires_at"])
    assert abs(expires - datetime.now(timezone.utc) - timedelta(hours=72)) < timedelta(minutes=5)
    assert row["lease_expires_at"][:16].replace("T", " ") in alice.get("/").get_data(as_text=True)


def test_keys_are_kept_for_reuse_and_duplicate_names_are_refused(app, worker, members):
    alice = members()
    launch(alice)
    form = alice.get("/instances/new").get_data(as_text=True)
    assert "SHA256:" in form and 'name="saved_keys"' in form
    response = request_instance(alice, expect=422)
    assert "You already have an instance named web." in response.get_data(as_text=True)
    with app.app_context():
        saved = get_db()["ssh_keys"].rows_where()
        key_id = next(saved)["id"]
    launch(alice, name="second", keys="", saved_keys=str(key_id))


def test_members_never_see_each_others_instances(settings, worker, members):
    alice, mallory = members(), members()
    location, _ = launch(alice)
    assert mallory.get(location).status_code == 404
    assert mallory.get(f"{location}/progress").status_code == 404
    for action in ("start", "stop", "restart", "delete"):
        assert post_action(mallory, location, action).status_code == 404
    assert alice.username not in mallory.get("/").get_data(as_text=True)
    assert member_instance(settings, alice).status == "Running"
    assert alice.get(f"{location}/progress").get_json()["status"] == "ready"


def test_over_quota_names_the_limit_use_and_allowance(worker, members):
    bob = members(tier="half")  # two instances
    launch(bob, name="one")
    launch(bob, name="two")
    response = request_instance(bob, expect=409, name="three")
    assert "instances: this needs 1, you use 2 of your 2" in response.get_data(as_text=True)


def test_a_dns_name_owned_by_someone_else_fails_cleanly(app, settings, zone, dig, worker, members):
    alice = members()
    fqdn = f"web.{alice.username}.{zone.name}"
    warren_dns.publish_address(zone, fqdn, "192.0.2.7", "someone-else")
    try:
        location = request_instance(alice).headers["Location"]
        progress = wait_done(alice, location)
        assert progress["status"] == "failed"
        assert "already in use in DNS" in progress["error"]
        assert progress["ipv4"] is None
        assert member_instance(settings, alice) is None  # rolled back
        assert dig(fqdn) == ["192.0.2.7"]  # never overwritten
        assert post_action(alice, location, "delete").status_code == 303
        wait_gone(alice, location)
        assert dig(fqdn) == ["192.0.2.7"]
    finally:
        warren_dns.remove_name(zone, fqdn, "someone-else")


def test_a_share_without_nesting_is_refused_while_a_nested_instance_exists(app, settings, worker,
                                                                           members):
    alice = members()
    launch(alice, name="box", profile="nested")
    result = app.test_cli_runner().invoke(args=["user", "set-quota", alice.username, "--tier", "half"])
    assert result.exit_code == 1
    assert "nesting: box use(s) a nesting profile" in result.output
    project = lxd.backend(settings).client().projects.get(project_name(alice.username))
    assert project.config["restricted.containers.nesting"] == "allow"  # unchanged, consistent
