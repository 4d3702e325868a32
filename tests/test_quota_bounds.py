"""Quota values are bounded wherever they enter (tiers, member overrides
on the web and the command line, members' requests), a share change LXD
refuses is not saved, one made while LXD is away is saved and says so, and
a request is decided once."""
import json
import socket

import pytest

from app import lxd, quotas, shares
from app.errors import ValidationError
from app.projects import project_name
from app.store import get_db
from conftest import make_app, post_form
from support import idmap_lock, launch

TOO_MANY = "1" + "0" * 30


def audit_rows(app, action):
    with app.app_context():
        return list(get_db()["audit"].rows_where("action = ?", [action], order_by="id"))


def overrides(app, username):
    with app.app_context():
        row = next(get_db()["users"].rows_where("username = ?", [username]))
        return json.loads(row["quota_overrides"] or "{}"), row["tier"]


# --- bounds ----------------------------------------------------------------

@pytest.mark.parametrize("key, text, message", [
    ("instances", TOO_MANY, "must be a whole number from 0 to 1000"),
    ("instances", "1001", "must be a whole number from 0 to 1000"),
    ("instances", "-1", "must be a whole number from 0 to 1000"),
    ("instances", "3\n", "must be a whole number from 0 to 1000"),
    ("instances", "1" * 5000, "must be a whole number from 0 to 1000"),
    ("cpu", "1025", "must be a whole number from 0 to 1024"),
    ("processes", "10000001", "must be a whole number from 0 to 10000000"),
    ("cpu_priority", "11", "must be a whole number from 0 to 10"),
    ("memory", "1025TiB", "must be a size from 0B to 1PiB, like 8GiB"),
    ("memory", "2PiB", "must be a size from 0B to 1PiB, like 8GiB"),
    ("disk", "-1GiB", "must be a size from 0B to 1PiB, like 8GiB"),
    ("disk", "9" * 5000 + "GiB", "must be a size from 0B to 1PiB, like 8GiB"),
    ("nesting", "yes", "must be true or false"),
])
def test_every_quota_value_is_bounded_and_the_bound_named(key, text, message):
    with pytest.raises(ValidationError) as caught:
        quotas.parse_overrides({key: text})
    assert caught.value.errors == {key: [message]}


def test_the_bounds_themselves_are_accepted():
    assert quotas.parse_overrides({"instances": "1000", "cpu": "1024", "memory": "1PiB",
                                   "disk": "1024TiB", "processes": "10000000", "cpu_priority": "0",
                                   "nesting": "false"}) == {
        "instances": 1000, "cpu": 1024, "memory": 1024 ** 5, "disk": 1024 ** 5,
        "processes": 10_000_000, "cpu_priority": 0, "nesting": False}


def test_an_unknown_quota_name_is_quoted_short():
    with pytest.raises(ValidationError) as caught:
        quotas.parse_overrides({"x" * 1000: "1"})
    [(field, [message])] = caught.value.errors.items()
    assert len(field) <= 41 and field.endswith("…")
    assert message.startswith("is not a quota")


def test_typed_values_are_bounded_too(app):
    with app.app_context(), pytest.raises(ValidationError) as caught:
        quotas.set_tier(get_db(), "big", {"instances": 10 ** 30, "memory": -1, "nesting": 1})
    assert caught.value.errors == {"instances": ["must be a whole number from 0 to 1000"],
                                   "memory": ["must be a size from 0B to 1PiB, like 8GiB"],
                                   "nesting": ["must be true or false"]}
    with app.app_context():
        assert "big" not in quotas.tiers(get_db())


@pytest.mark.parametrize("name", ["half\n", "new\n", "Half", "x" * 40])
def test_a_tier_name_must_match_whole(app, runner, name):
    result = runner.invoke(args=["tier", "set", name, "instances=1"])
    assert result.exit_code == 1 and "name:" in result.output, result.output
    with app.app_context():
        assert set(quotas.tiers(get_db())) == {"full", "half"}


def test_tier_set_refuses_values_out_of_bounds(app, runner):
    result = runner.invoke(args=["tier", "set", "half", f"instances={TOO_MANY}", "cpu=-2"])
    assert result.exit_code == 1
    assert "instances: must be a whole number from 0 to 1000" in result.output
    assert "cpu: must be a whole number from 0 to 1024" in result.output
    with app.app_context():
        assert quotas.tiers(get_db())["half"] == quotas.TIERS["half"]


def test_set_quota_command_refuses_values_out_of_bounds(app, runner, make_user):
    make_user("alice")
    result = runner.invoke(args=["user", "set-quota", "alice", f"instances={TOO_MANY}",
                                 "processes=99999999"])
    assert result.exit_code == 1
    assert "instances: must be a whole number from 0 to 1000" in result.output
    assert "processes: must be a whole number from 0 to 10000000" in result.output
    assert overrides(app, "alice") == ({}, "full")


def test_the_admin_form_refuses_values_out_of_bounds(app, admin, make_user):
    make_user("alice")
    refused = post_form(admin, "/admin/users/alice", {"tier": "full", "instances": TOO_MANY,
                                                      "memory": "2PiB", "cpu": "4"}, expect=422)
    body = refused.get_data(as_text=True)
    assert "must be a whole number from 0 to 1000" in body
    assert "must be a size from 0B to 1PiB, like 8GiB" in body
    assert "saved" not in body.lower()
    assert overrides(app, "alice") == ({}, "full")
    assert [row["result"] for row in audit_rows(app, "account.quota")] == []


def test_set_quota_refuses_stored_values_out_of_bounds(app, make_user):
    from app import members
    make_user("alice")
    with app.test_request_context(), pytest.raises(ValidationError) as caught:
        shares.set_quota(members.CLI, "alice", "full", {"instances": 10 ** 30})
    assert caught.value.errors == {"instances": ["must be a whole number from 0 to 1000"]}
    assert overrides(app, "alice") == ({}, "full")


def test_a_quota_request_is_bounded(app, make_user, auth, client):
    make_user("alice")
    auth.login("alice")
    refused = post_form(client, "/requests", {"instances": TOO_MANY, "cpu": "2000",
                                              "reason": "Everything."}, expect=422)
    body = refused.get_data(as_text=True)
    assert "must be a whole number from 0 to 1000" in body
    assert "must be a whole number from 0 to 1024" in body
    with app.app_context():
        assert get_db()["approvals"].count == 0


# --- LXD away: saved, and said so ------------------------------------------

@pytest.fixture
def lxd_away(tmp_path):
    """An app whose LXD socket nobody listens on (as after the daemon died)."""
    path = str(tmp_path / "lxd-gone.socket")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)
    return make_app(tmp_path, lxd_socket=path)


def test_a_share_change_while_lxd_is_away_is_saved_and_says_so(lxd_away):
    from conftest import Auth
    from app import accounts
    from support import PASSWORD
    with lxd_away.app_context():
        accounts.create_user("boss", PASSWORD, "admin")
        accounts.create_user("alice", PASSWORD)
    admin = lxd_away.test_client()
    Auth(admin).login("boss")
    saved = post_form(admin, "/admin/users/alice", {"tier": "half", "instances": "1"}, expect=303)
    page = admin.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Saved alice&#39;s share, but LXD is not reachable now" in page
    assert "the worker brings their LXD project in line on its next pass" in page
    assert overrides(lxd_away, "alice") == ({"instances": 1}, "half")
    result = lxd_away.test_cli_runner().invoke(args=["user", "set-quota", "alice", "cpu=2"])
    assert result.exit_code == 0, result.output
    assert "saved, but LXD is not reachable now" in result.output
    assert overrides(lxd_away, "alice") == ({"instances": 1, "cpu": 2}, "half")


# --- LXD refuses: nothing saved ----------------------------------------------

def stray_instance(settings, member, unique_name):
    """An instance made in the member's project straight through the LXD
    API (as a member with API access could): LXD counts it, Warren does not."""
    scoped = lxd.backend(settings).client(project=project_name(member.username))
    lxd.create_instance(scoped, unique_name("stray"), "busybox", profiles=["small"],
                        config={"security.idmap.isolated": "true"}, lock_path=idmap_lock())


def project_limits(settings, member):
    return lxd.backend(settings).client().projects.get(project_name(member.username)).config


def test_a_share_change_lxd_refuses_is_not_saved_and_says_why(app, settings, worker, members,
                                                             admin, unique_name):
    alice = members()
    launch(alice)
    stray_instance(settings, alice, unique_name)
    refused = post_form(admin, f"/admin/users/{alice.username}",
                        {"tier": "full", "instances": "1", "memory": "8GiB"})
    assert refused.status_code == 502, refused.status_code
    body = refused.get_data(as_text=True)
    assert "LXD refused the new limits, so nothing was saved" in body
    assert "limits.instances" in body and "too low" in body  # LXD's own reason
    assert 'value="1"' in body  # the admin's input is kept
    assert overrides(app, alice.username) == ({}, "full")
    config = project_limits(settings, alice)
    assert (config["limits.instances"], config["limits.memory"]) == ("4", "6GiB")
    assert [row["result"] for row in audit_rows(app, "account.quota")] == ["failed"]
    # what LXD accepts is saved and reaches the project at once
    post_form(admin, f"/admin/users/{alice.username}", {"tier": "full", "memory": "8GiB"}, expect=303)
    assert project_limits(settings, alice)["limits.memory"] == "8GiB"


def test_a_tier_change_lxd_refuses_is_not_saved(app, settings, worker, members, unique_name):
    alice = members()
    launch(alice)
    runner = app.test_cli_runner()
    tier = unique_name("tier")
    assert runner.invoke(args=["tier", "set", tier]).exit_code == 0
    moved = runner.invoke(args=["user", "set-quota", alice.username, "--tier", tier])
    assert moved.exit_code == 0, moved.output
    stray_instance(settings, alice, unique_name)
    refused = runner.invoke(args=["tier", "set", tier, "instances=1", "cpu=5"])
    assert refused.exit_code == 1, refused.output
    assert "LXD refused the new limits, so nothing was saved" in refused.output
    assert "too low" in refused.output
    with app.app_context():
        assert quotas.tiers(get_db())[tier] == quotas.TIERS["full"]
    assert (project_limits(settings, alice)["limits.instances"],
            project_limits(settings, alice)["limits.cpu"]) == ("4", "6")
    refused = runner.invoke(args=["user", "set-quota", alice.username, "instances=1"])
    assert refused.exit_code == 1 and "nothing was saved" in refused.output
    assert overrides(app, alice.username) == ({}, tier)


def test_an_approval_lxd_refuses_leaves_the_request_waiting(app, settings, worker, members, admin,
                                                           unique_name):
    alice = members()
    launch(alice)
    post_form(alice, "/requests", {"instances": "1", "memory": "8GiB", "reason": "One big one."},
              expect=303)
    stray_instance(settings, alice, unique_name)
    with app.app_context():
        approval_id = next(get_db()["approvals"].rows)["id"]
    refused = post_form(admin, "/admin/approvals", {"reason": ""},
                        url=f"/admin/approvals/{approval_id}/approve")
    assert refused.status_code == 502
    assert "nothing was saved" in refused.get_data(as_text=True)
    with app.app_context():
        assert get_db()["approvals"].get(approval_id)["state"] == "pending"
    assert overrides(app, alice.username) == ({}, "full")
    assert project_limits(settings, alice)["limits.memory"] == "6GiB"


# --- a request is decided once ---------------------------------------------

def decide(admin, approval_id, verdict, reason="", expect=None):
    return post_form(admin, "/admin/approvals", {"reason": reason},
                     url=f"/admin/approvals/{approval_id}/{verdict}", expect=expect)


def ask(app, member, **values):
    post_form(member, "/requests", {**values, "reason": "For a workshop."}, expect=303)
    with app.app_context():
        return get_db().execute("SELECT max(id) FROM approvals").fetchone()[0]


@pytest.mark.lxd
def test_a_decided_request_cannot_be_decided_again(app, members, admin):
    alice = members()
    approval_id = ask(app, alice, instances="6")
    decide(admin, approval_id, "approve", expect=303)
    assert overrides(app, alice.username) == ({"instances": 6}, "full")
    post_form(admin, f"/admin/users/{alice.username}", {"tier": "full", "instances": "3"}, expect=303)
    again = decide(admin, approval_id, "approve", expect=409)
    assert "This request was decided already." in again.get_data(as_text=True)
    decide(admin, approval_id, "deny", reason="Changed my mind.", expect=409)
    assert overrides(app, alice.username) == ({"instances": 3}, "full")
    with app.app_context():
        row = get_db()["approvals"].get(approval_id)
    assert (row["state"], row["decision"]) == ("approved", "")


@pytest.mark.lxd
def test_a_denied_request_cannot_be_approved(app, members, admin):
    alice = members()
    approval_id = ask(app, alice, memory="8GiB")
    decide(admin, approval_id, "deny", reason="Not now.", expect=303)
    again = decide(admin, approval_id, "approve", expect=409)
    assert "This request was decided already." in again.get_data(as_text=True)
    assert overrides(app, alice.username) == ({}, "full")
    with app.app_context():
        assert get_db()["approvals"].get(approval_id)["state"] == "denied"
    assert [row["result"] for row in audit_rows(app, "quota.approve")] == ["refused"]
