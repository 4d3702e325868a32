"""The admin console through the web client, against the real LXD and
named: profile edits reach every member project, approvals, member
disable/enable/delete, invitations, the audit log and usage."""
import time
from pathlib import Path

import pytest

from app import lxd
from app.names import project_name
from app.store import get_db
from conftest import PASSWORD, REPO, Auth, make_app, post_form
from support import wait_until, dig_status, launch, member_instance, request_instance, run_in, wait_done


@pytest.fixture
def app(tmp_path):
    """The app with its own copy of profiles/, which these tests edit."""
    app = make_app(tmp_path, own_profiles=True)
    app.config["WARREN"]["reconcile_seconds"] = 2  # the worker syncs edited files quickly
    return app


def audit_rows(app, **where):
    with app.app_context():
        clause = " AND ".join(f"{key} = ?" for key in where)
        return list(get_db()["audit"].rows_where(clause or None, list(where.values()), order_by="id"))


def save_profile(admin, name, text, creating=False, expect=303):
    """Review, then save, as the edit page asks."""
    page = "/admin/profiles/new" if creating else f"/admin/profiles/{name}"
    data = {"text": text, **({"name": name} if creating else {})}
    review = post_form(admin, page, data)
    assert review.status_code in (200, 409, 422), review.status_code
    if expect != 303:
        return review
    body = review.get_data(as_text=True)
    assert 'id="review"' in body, body[:3000]
    return post_form(admin, page, {**data, "reviewed": text}, expect=303)


# --- profiles ---------------------------------------------------------------

def test_profile_edit_reaches_every_member_project_and_running_instances(app, settings, worker,
                                                                        members, admin):
    alice, bob = members(), members()
    launch(alice)
    launch(bob)
    text = (REPO / "profiles" / "small.yaml").read_text()
    edited = text.replace("memory: 512MiB", "memory: 640MiB").replace("50ms/100ms", "30ms/100ms")
    review = post_form(admin, "/admin/profiles/small", {"text": edited}, expect=200)
    body = review.get_data(as_text=True)
    assert f"web.{alice.username}." in body and f"web.{bob.username}." in body  # affected, before saving
    assert "config limits.memory" in body and "640MiB" in body
    assert lxd.backend(settings).client(project=project_name(alice.username)) \
        .profiles.get("small").config["limits.memory"] == "512MiB"  # a review changes nothing

    save_profile(admin, "small", edited)
    assert "memory: 640MiB" in open(app.config["WARREN"].profiles_dir + "/small.yaml").read()
    for member in (alice, bob):
        scoped = lxd.backend(settings).client(project=project_name(member.username))
        profile = scoped.profiles.get("small")
        assert profile.config["limits.memory"] == "640MiB"
        assert profile.config["limits.cpu.allowance"] == "30ms/100ms"
        instance = member_instance(settings, member)
        assert instance.expanded_config["limits.memory"] == "640MiB"
        limit = run_in(instance, "sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                       "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(limit) == 640 * 1024 ** 2  # the running instance follows live
    with app.app_context():
        assert {row["memory"] for row in get_db()["instances"].rows} == {640 * 1024 ** 2}
    entry = audit_rows(app, action="profile.edit")[-1]
    assert (entry["actor"], entry["target"], entry["result"]) == ("boss", "small", "ok")
    assert "config limits.memory: 512MiB -> 640MiB" in entry["detail"]


def test_profile_change_that_passes_a_quota_is_refused_naming_the_member(app, settings, worker,
                                                                         members, admin):
    alice = members()
    launch(alice)
    post_form(admin, f"/admin/users/{alice.username}", {"tier": "full", "memory": "600MiB"},
              expect=303)
    text = (REPO / "profiles" / "small.yaml").read_text()
    edited = text.replace("memory: 512MiB", "memory: 1GiB")
    review = post_form(admin, "/admin/profiles/small", {"text": edited}, expect=200)
    assert f"{alice.username} would use memory 1GiB of 600MiB" in review.get_data(as_text=True)
    refused = post_form(admin, "/admin/profiles/small", {"text": edited, "reviewed": edited},
                        expect=409)
    assert f"{alice.username} would use memory" in refused.get_data(as_text=True)
    assert "memory: 512MiB" in open(app.config["WARREN"].profiles_dir + "/small.yaml").read()
    scoped = lxd.backend(settings).client(project=project_name(alice.username))
    assert scoped.profiles.get("small").config["limits.memory"] == "512MiB"
    assert audit_rows(app, action="profile.edit")[-1]["result"] == "refused"


def test_profiles_are_created_validated_and_deleted_only_when_unused(app, settings, worker,
                                                                     members, admin):
    alice = members()
    launch(alice)
    bad = save_profile(admin, "tiny", "description: x\nlimits: {cpu: 0}\nimages: []\n"
                       "config: {security.privileged: true}\n", creating=True, expect=422)
    body = bad.get_data(as_text=True)
    assert "tiny.yaml: limits" in body and "tiny.yaml: images" in body
    assert "security.privileged is not allowed" in body
    text = (REPO / "profiles" / "small.yaml").read_text().replace("512MiB", "128MiB")
    save_profile(admin, "tiny", text, creating=True)
    scoped = lxd.backend(settings).client(project=project_name(alice.username))
    assert scoped.profiles.get("tiny").config["limits.memory"] == "128MiB"
    assert "tiny" in alice.get("/instances/new").get_data(as_text=True)  # offered at once
    again = save_profile(admin, "tiny", text, creating=True, expect=409)
    assert "exists already" in again.get_data(as_text=True)

    in_use = post_form(admin, "/admin/profiles/small", {}, url="/admin/profiles/small/delete")
    assert in_use.status_code == 409
    assert f"web.{alice.username}." in in_use.get_data(as_text=True)
    post_form(admin, "/admin/profiles/tiny", {}, url="/admin/profiles/tiny/delete", expect=303)
    assert not (Path(app.config["WARREN"].profiles_dir) / "tiny.yaml").exists()
    assert not scoped.profiles.exists("tiny")
    results = [(row["action"], row["target"], row["result"]) for row in
               audit_rows(app, actor="boss") if row["action"].startswith("profile.")]
    # Reviews change nothing and are not recorded; saves and deletes are.
    assert results == [("profile.create", "tiny", "ok"), ("profile.delete", "small", "refused"),
                       ("profile.delete", "tiny", "ok")]


def test_a_profile_file_changed_on_disk_reaches_lxd_without_a_restart(app, settings, worker,
                                                                      members):
    alice = members()
    launch(alice)
    path = app.config["WARREN"].profiles_dir + "/small.yaml"
    text = open(path).read()
    with open(path, "w") as handle:  # as a git pull would
        handle.write(text.replace("memory: 512MiB", "memory: 700MiB"))
    scoped = lxd.backend(settings).client(project=project_name(alice.username))
    wait_until(lambda: scoped.profiles.get("small").config["limits.memory"] == "700MiB",
               message="the worker's pass syncing the edited file")
    assert member_instance(settings, alice).expanded_config["limits.memory"] == "700MiB"
    with app.app_context():  # and the quota check counts the new size
        wait_until(lambda: next(get_db()["instances"].rows)["memory"] == 700 * 1024 ** 2,
                   message="the instance row's limits aligned")


# --- approvals --------------------------------------------------------------

def needs_approval(admin):
    """Make the burst profile require approval, through the editor."""
    text = (REPO / "profiles" / "burst.yaml").read_text() + "approval: true\n"
    save_profile(admin, "burst", text)


def test_a_denied_request_creates_nothing_and_the_member_sees_why(app, settings, zone, worker,
                                                                  members, admin):
    needs_approval(admin)
    alice = members()
    location = request_instance(alice, name="big", profile="burst").headers["Location"]
    progress = wait_done(alice, location)
    assert progress["status"] == "awaiting-approval" and progress["ipv4"]
    queue = admin.get("/admin/approvals").get_data(as_text=True)
    assert f"big.{alice.username}." in queue
    with app.app_context():
        approval_id = get_db()["approvals"].rows.__next__()["id"]
    page = "/admin/approvals"
    no_reason = post_form(admin, page, {"reason": ""}, url=f"{page}/{approval_id}/deny")
    assert no_reason.status_code == 303
    assert alice.get(f"{location}/progress").get_json()["status"] == "awaiting-approval"
    post_form(admin, page, {"reason": "Bursts are booked out this week."},
              url=f"{page}/{approval_id}/deny", expect=303)
    progress = alice.get(f"{location}/progress").get_json()
    assert progress["status"] == "denied" and progress["ipv4"] is None
    assert "Bursts are booked out this week." in progress["error"]
    assert "Bursts are booked out this week." in alice.get("/requests").get_data(as_text=True)
    time.sleep(1)  # give a (wrongly) queued job the chance to run
    assert member_instance(settings, alice, "big") is None
    assert dig_status(settings, f"big.{alice.username}.{settings.dns_zone}") == "NXDOMAIN"
    with app.app_context():
        assert get_db()["jobs"].count == 0
    with app.app_context():
        from app import quotas
        user_id = get_db()["users"].rows_where("username = ?", [alice.username]).__next__()["id"]
        assert quotas.usage(get_db(), user_id)["instances"] == 0  # holds no quota
    results = [(row["actor"], row["action"], row["result"]) for row in audit_rows(app)
               if row["action"] in ("instance.request", "instance.deny")]
    assert results == [(alice.username, "instance.request", "ok"), ("boss", "instance.deny", "refused"),
                       ("boss", "instance.deny", "ok")]


def test_an_approved_request_is_built(app, settings, worker, members, admin):
    needs_approval(admin)
    alice = members()
    location = request_instance(alice, name="big", profile="burst").headers["Location"]
    assert wait_done(alice, location)["status"] == "awaiting-approval"
    assert member_instance(settings, alice, "big") is None
    with app.app_context():
        approval_id = next(get_db()["approvals"].rows)["id"]
    post_form(admin, "/admin/approvals", {"reason": "Enjoy the workshop."},
              url=f"/admin/approvals/{approval_id}/approve", expect=303)
    assert wait_done(alice, location)["status"] == "ready"
    assert member_instance(settings, alice, "big").status == "Running"
    assert "approved" in alice.get("/requests").get_data(as_text=True)
    assert audit_rows(app, action="instance.approve")[0]["member"] == alice.username


def test_a_quota_raise_goes_through_the_queue(app, settings, worker, members, admin):
    alice = members()
    launch(alice)
    refused = post_form(alice, "/requests", {"instances": "6", "memory": "lots", "reason": ""},
                        expect=422)
    body = refused.get_data(as_text=True)
    assert "Say what you need it for" in body and "memory" in body
    post_form(alice, "/requests", {"instances": "6", "memory": "8GiB", "reason": "A class of six."},
              expect=303)
    assert "waiting for an admin" in alice.get("/requests").get_data(as_text=True)
    assert "instances=6" in admin.get("/admin/approvals").get_data(as_text=True)
    with app.app_context():
        approval_id = next(get_db()["approvals"].rows)["id"]
    post_form(admin, "/admin/approvals", {"reason": ""},
              url=f"/admin/approvals/{approval_id}/approve", expect=303)
    project = lxd.backend(settings).client().projects.get(project_name(alice.username))
    assert project.config["limits.instances"] == "6"
    assert project.config["limits.memory"] == "8GiB"
    assert "approved" in alice.get("/requests").get_data(as_text=True)
    assert [row["result"] for row in audit_rows(app, action="quota.approve")] == ["ok"]


# --- members ----------------------------------------------------------------

def test_disabling_a_member_stops_their_instances_and_signs_them_out(app, settings, worker,
                                                                     members, admin):
    alice = members()
    launch(alice)
    page = f"/admin/users/{alice.username}"
    post_form(admin, page, {}, url=f"{page}/disable", expect=303)
    assert alice.get("/").status_code == 302  # their session is gone
    wait_until(lambda: member_instance(settings, alice).status == "Stopped",
               message="the member's instance stopped")
    refused = Auth(app.test_client()).login(alice.username)
    assert refused.status_code == 401
    post_form(admin, page, {}, url=f"{page}/enable", expect=303)
    assert Auth(app.test_client()).login(alice.username).status_code == 302
    assert member_instance(settings, alice).status == "Stopped"  # stays stopped until started
    self_disable = post_form(admin, "/admin/users/boss", {}, url="/admin/users/boss/disable")
    assert self_disable.status_code == 409
    results = [(row["action"], row["target"], row["result"]) for row in audit_rows(app, actor="boss")
               if row["action"].startswith("account.")]
    assert results == [("account.disable", alice.username, "ok"),
                       ("account.enable", alice.username, "ok"),
                       ("account.disable", "boss", "refused")]
    wait_until(lambda: audit_rows(app, action="instance.stop", actor="warren", result="ok"),
               message="the worker's stop recorded")


def test_deleting_a_member_leaves_nothing_in_lxd_or_dns(app, settings, worker, members, admin, dig):
    alice = members()
    _, progress = launch(alice)
    launch(alice, name="second")
    assert dig(progress["fqdn"]) == [progress["ipv4"]]
    page = f"/admin/users/{alice.username}"
    wrong = post_form(admin, page, {"confirmation": "yes"}, url=f"{page}/delete", expect=422)
    assert f"Type {alice.username} to confirm" in wrong.get_data(as_text=True)
    assert member_instance(settings, alice) is not None  # nothing happened
    post_form(admin, page, {"confirmation": alice.username}, url=f"{page}/delete", expect=303)
    client = lxd.backend(settings).client()
    wait_until(lambda: not lxd.project_exists(client, project_name(alice.username)), timeout=60,
               message="the member's project removed")
    assert dig_status(settings, progress["fqdn"]) == "NXDOMAIN"
    assert dig_status(settings, f"second.{alice.username}.{settings.dns_zone}") == "NXDOMAIN"
    with app.app_context():
        db = get_db()
        assert not db["users"].count_where("username = ?", [alice.username])
        assert db["instances"].count == 0 and db["ssh_keys"].count == 0
    assert admin.get(page).status_code == 404
    entries = [(row["action"], row["result"]) for row in audit_rows(app, member=alice.username)]
    assert ("account.delete", "refused") in entries and ("account.delete", "ok") in entries
    assert entries[-1] == ("account.deleted", "ok")


def test_admins_create_members_and_invite_with_a_one_time_link(app, admin):
    bad = post_form(admin, "/admin/users", {"create-username": "Bad Name", "create-password": "short",
                                            "create-role": "member", "create-tier": "half"},
                    expect=422)
    body = bad.get_data(as_text=True)
    assert "lower-case letters" in body and "at least 10 characters" in body
    post_form(admin, "/admin/users", {"create-username": "carol", "create-password": PASSWORD,
                                      "create-role": "member", "create-tier": "half"}, expect=303)
    assert "half" in admin.get("/admin/users/carol").get_data(as_text=True)
    made = post_form(admin, "/admin/users", {"invite-role": "member", "invite-tier": "half",
                                             "invite-hours": "24"}, expect=200)
    link = made.get_data(as_text=True).split('id="invite-link">', 1)[1].split("<", 1)[0]
    path = link.split("localhost", 1)[1]
    guest = app.test_client()
    assert "with the half share" in guest.get(path).get_data(as_text=True)
    taken = post_form(guest, path, {"username": "carol", "password": PASSWORD, "confirm": PASSWORD})
    assert taken.status_code == 409 and "already taken" in taken.get_data(as_text=True)
    post_form(guest, path, {"username": "dave", "password": PASSWORD, "confirm": PASSWORD},
              expect=303)
    assert "dave" in guest.get("/").get_data(as_text=True)  # signed in
    assert app.test_client().get(path).status_code == 404  # used up
    with app.app_context():
        dave = get_db()["users"].rows_where("username = 'dave'").__next__()
    assert (dave["role"], dave["tier"]) == ("member", "half")
    actions = [(row["actor"], row["action"], row["result"]) for row in audit_rows(app)
               if row["action"].startswith("account.") and row["actor"] != "cli"]
    assert actions == [("boss", "account.create", "refused"), ("boss", "account.create", "ok"),
                       ("boss", "account.invite", "ok"), ("dave", "account.create", "ok"),
                       ("dave", "account.accept-invite", "ok")]


def test_a_share_change_that_would_not_fit_is_refused(app, settings, worker, members, admin):
    alice = members()
    launch(alice, name="box", profile="nested")
    refused = post_form(admin, f"/admin/users/{alice.username}", {"tier": "half"}, expect=409)
    assert "nesting: box use(s) a nesting profile" in refused.get_data(as_text=True)
    refused = post_form(admin, f"/admin/users/{alice.username}", {"tier": "full", "instances": "0"},
                        expect=409)
    assert "instances: uses 1, the new allowance is 0" in refused.get_data(as_text=True)
    project = lxd.backend(settings).client().projects.get(project_name(alice.username))
    assert project.config["restricted.containers.nesting"] == "allow"
    assert project.config["limits.instances"] == "4"


# --- audit log and usage ----------------------------------------------------

def test_audit_log_filters_and_members_see_only_their_own(app, worker, members, admin):
    alice, bob = members(), members()
    launch(alice)
    request_instance(bob, name="x", profile="nope", expect=422)
    everything = admin.get("/admin/audit").get_data(as_text=True)
    assert alice.username in everything and bob.username in everything
    page = admin.get(f"/admin/audit?member={bob.username}&result=refused").get_data(as_text=True)
    only = page.split('<table class="audit">', 1)[1]  # the entries, not the filter choices
    assert "instance.request" in only and alice.username not in only
    assert "instance.provision" in admin.get("/admin/audit?action=instance.provision") \
        .get_data(as_text=True)
    assert "No entries." in admin.get("/admin/audit?since=2999-01-01").get_data(as_text=True)
    own = alice.get("/activity").get_data(as_text=True)
    assert f"web.{alice.username}." in own and bob.username not in own
    assert alice.get("/admin/audit").status_code == 404


def test_usage_comes_from_lxd_state_and_metrics(app, settings, worker, members, admin):
    alice, bob = members(), members()
    launch(alice)
    instance = member_instance(settings, alice)
    run_in(instance, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
    scoped = lxd.backend(settings).client(project=project_name(alice.username))
    seconds = lxd.cpu_seconds(scoped)
    assert set(seconds) == {instance.name}  # the project's instances only
    assert seconds[instance.name] > 0.1
    with app.app_context():
        from app import accounts, usage
        report = usage.member_usage(accounts.find_user(alice.username))
    assert report.running == 1 and report.memory > 0 and report.disk > 0
    assert report.cpu_seconds >= seconds[instance.name]
    page = admin.get("/admin/usage").get_data(as_text=True)
    assert alice.username in page and bob.username in page and "CPU threads" in page
    assert "Live, as LXD sees it" in alice.get("/usage").get_data(as_text=True)


@pytest.mark.lxd
def test_on_one_server_the_cluster_page_and_commands_say_so(app, admin):
    page = admin.get("/admin/cluster")
    assert page.status_code == 200
    assert "LXD is one server here, not a cluster" in page.get_data(as_text=True)
    runner = app.test_cli_runner()
    assert "LXD is not a cluster here: one server" in runner.invoke(args=["cluster", "list"]).output
    plan = runner.invoke(args=["cluster", "plan", "m1"])
    assert plan.exit_code == 1 and "No cluster member m1 (the members are: none, this is one server)" \
        in plan.output
