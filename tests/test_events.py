"""Events: an admin makes an event of teams with machines each; Warren
builds them ahead of the start (real LXD and named), each team sees only its
own, and at the end everything is stopped and then removed."""
import re
from datetime import timedelta

import pytest

from app import accounts, clock, dns as warren_dns, events, lxd
from app.names import project_name
from app.store import get_db
from conftest import PASSWORD, Auth, make_app, post_form
from support import KEY, dig_status, remove_names, run_in, wait_until

MACHINES = "web small busybox\ndb small busybox"


def when(**delta) -> str:
    return (clock.now() + timedelta(**delta)).strftime(events.TIME_FORMAT)


def event_form(name, **fields):
    data = {"name": name, "title": "Cyber defence", "teams": "3", "machines": MACHINES,
            "starts_at": when(hours=1), "ends_at": when(hours=49), "build_hours": "12",
            "grace_hours": "0", "keep": "none", "keys": KEY}
    data.update(fields)
    return data


def test_a_bad_event_gives_every_error_at_once_and_makes_nothing(app, admin, make_user, unique_name):
    make_user("taken-blue")
    response = post_form(admin, "/admin/events", event_form(
        "taken", teams="blue\nred\nblue\nBad_Team!\nyellow,taken-blue\ngreen,x",
        machines="web small busybox\nweb small busybox\ndb nosuch busybox\nmail small nosuch-image\n"
                 "only-two-fields\n-bad small busybox",
        starts_at="tomorrow", ends_at=when(hours=-1), keys="not a key"), expect=422)
    page = response.get_data(as_text=True)
    for text in ("the team blue is listed twice", "&#39;bad_team!&#39; is not a valid team name",
                 "account x:", "These account names are taken: taken-blue",
                 "the machine web is listed twice", "there is no profile nosuch",
                 "offers debian-12, busybox, not nosuch-image", "use name profile image",
                 "&#39;-bad&#39; is not a valid machine name", "Give a time like",
                 "The end is in the past"):
        assert text in page, text
    assert "keys" in page.lower()
    with app.app_context():
        db = get_db()
        assert db["team_events"].count == 0 and db["event_teams"].count == 0
        assert not db["tiers"].count_where("name LIKE 'ev-%'")
        assert db["users"].count == 2  # the admin and taken-blue


@pytest.mark.parametrize("setting, value, teams, expected", [
    ("event_max_instances", "5", "4", "4 teams x 2 machines = 8 instances, more than this "
                                      "host&#39;s event budget of 5"),
    ("event_memory_share", "1", "2", "the machines&#39; memory limits add up to 2GiB, more than 1% "
                                     "of the host"),
])
def test_an_event_beyond_the_host_budget_is_refused_with_the_numbers(
        tmp_path, settings, setting, value, teams, expected):
    app = make_app(tmp_path, **{setting: value})
    with app.app_context():
        accounts.create_user("boss", PASSWORD, "admin")
    admin = app.test_client()
    Auth(admin).login("boss")
    page = post_form(admin, "/admin/events", event_form("big", teams=teams), expect=422).get_data(
        as_text=True)
    assert expected in page
    with app.app_context():
        assert get_db()["team_events"].count == 0 and get_db()["users"].count == 1


@pytest.fixture
def leftovers(app, settings):
    """Whatever a failed test left of its events goes (the team projects
    and names), so that the next test on this bridge gets its addresses."""
    yield
    if "test.worker" in app.extensions:
        app.extensions["test.worker"].stop()
    remove_names(app.config["WARREN"].database, warren_dns.zone_from_settings(settings))
    with app.app_context():
        usernames = [row["username"] for row in get_db()["event_teams"].rows]
    for username in usernames:
        lxd.delete_project(lxd.backend(settings), project_name(username))


def team_links(page: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><td>([a-z0-9-]+)</td><td><code>http://[^/]+(/team/[^<]+)</code>", page))


def run_pass(app):
    with app.app_context():
        db = get_db()
        return events.advance(db, app.config["WARREN"])


def test_an_event_is_built_each_team_sees_only_its_own_and_nothing_is_left_at_its_end(
        app, settings, admin, worker, leftovers, unique_name, dig):
    name = unique_name("ev")[:10]
    created = post_form(admin, "/admin/events", event_form(name), expect=201)
    links = team_links(created.get_data(as_text=True))
    assert sorted(links) == ["t01", "t02", "t03"]
    accounts = [f"{name}-{team}" for team in sorted(links)]

    # Within its build window: the six machines were requested at once, the worker builds them.
    assert run_pass(app) == []  # nothing twice

    def progress():
        with app.app_context():
            return events.progress(events.find(name))
    done = wait_until(lambda: (lambda p: p if p["ready"] + p["failed"] == 6 else None)(progress()),
                      timeout=240, message="six machines built")
    assert done["ready"] == 6, [row["error"] for row in done["failures"]]
    page = admin.get(f"/admin/events/{name}").get_data(as_text=True)
    assert "6 of 6 machines ready, 0 building" in page

    # A team claims its account through its link and sees only its own machines.
    teams = {}
    for team, path in links.items():
        client = app.test_client()
        post_form(client, path, {"password": "team-password-" + team,
                                 "confirm": "team-password-" + team}, expect=303)
        assert client.get(path).status_code == 404  # once
        teams[team] = client
    for team, client in teams.items():
        dashboard = client.get("/").get_data(as_text=True)
        for other in accounts:
            for machine in ("web", "db"):
                fqdn = f"{machine}.{other}.{settings.dns_zone}"
                assert (fqdn in dashboard) == (other == f"{name}-{team}"), (team, fqdn)
    with app.app_context():
        rows = events.progress(events.find(name))["rows"]
    mine = {row["team"]: row["id"] for row in rows if row["name"] == "web"}
    assert teams["t01"].get(f"/instances/{mine['t02']}").status_code == 404
    for row in rows:
        assert dig(row["fqdn"]) == [row["ipv4"]]
    client = lxd.backend(settings).client(project=project_name(f"{name}-t01"))
    instance = client.instances.get(rows[0]["lxd_name"])
    assert KEY in run_in(instance, "cat", "/root/.ssh/authorized_keys")
    with app.app_context():
        team_user = get_db()["users"].get(rows[0]["user_id"])
    assert team_user["tier"] == f"ev-{name}"  # the event's quota, not a member share

    # The end: stopped, accounts disabled; grace 0 and keep=none: then all removed.
    post_form(admin, f"/admin/events/{name}", {}, url=f"/admin/events/{name}/end", expect=303)
    assert run_pass(app) == [f"event {name} ended"]
    wait_until(lambda: set(lxd.instance_states(client).values()) == {"Stopped"}, timeout=60,
               message="the team's machines stopped")
    assert teams["t01"].get("/").status_code in (302, 303)  # signed out
    assert run_pass(app) == [f"event {name}: removing"]
    wait_until(lambda: not progress()["rows"], timeout=120, message="machines removed")
    assert run_pass(app) == [f"event {name} removed"]
    from app import members
    with app.app_context():
        members.finish_deletions(get_db(), settings)
    assert run_pass(app) == []  # the event's tier goes with its last account
    with app.app_context():
        db = get_db()
        assert not db["users"].count_where("username LIKE ?", [f"{name}-%"])
        assert not db["tiers"].count_where("name = ?", [f"ev-{name}"])
        assert events.find(name)["state"] == "removed"
        actions = [row["action"] for row in db["audit"].rows_where(
            "target = ?", [name], order_by="id")]
    assert actions == ["event.create", "event.building", "event.end", "event.ended",
                       "event.removing", "event.removed"]
    for row in rows:
        assert dig_status(settings, row["fqdn"]) == "NXDOMAIN"
    for account in accounts:
        assert not lxd.project_exists(lxd.backend(settings).client(), project_name(account))


@pytest.mark.parametrize("teams, problem", [
    ("0", "Give from 1 to 500 teams."),
    ("a,b,c", "has 3 fields"),
    ("", "Give a number of teams"),
])
def test_team_lists(teams, problem):
    _pairs, problems = events.parse_teams(teams, "ev")
    assert any(problem in line for line in problems), problems


def test_team_lists_name_accounts_after_the_event_or_as_given():
    assert events.parse_teams("3", "cdc")[0] == [("t01", "cdc-t01"), ("t02", "cdc-t02"),
                                                 ("t03", "cdc-t03")]
    assert events.parse_teams("blue\nred,crimson-team\n# comment", "cdc") == (
        [("blue", "cdc-blue"), ("red", "crimson-team")], [])


def test_with_keep_backup_every_machine_is_backed_up_before_it_is_removed(
        app, settings, admin, worker, leftovers, unique_name):
    name = unique_name("ev")[:10]
    post_form(admin, "/admin/events", event_form(name, teams="solo", machines="web small busybox",
                                                 keep="backup"), expect=201)

    def rows():
        with app.app_context():
            return events.progress(events.find(name))["rows"]
    wait_until(lambda: [row for row in rows() if row["status"] == "ready"], timeout=120,
               message="the machine built")
    post_form(admin, f"/admin/events/{name}", {}, url=f"/admin/events/{name}/end", expect=303)
    assert run_pass(app) == [f"event {name} ended"]
    assert run_pass(app) == []  # grace 0: archiving begins, the backup is queued
    with app.app_context():
        assert events.find(name)["state"] == "archiving"
    wait_until(lambda: run_pass(app) == [f"event {name}: removing"], timeout=180,
               message="the backup made")
    wait_until(lambda: not rows(), timeout=120, message="the machine removed")
    assert run_pass(app) == [f"event {name} removed"]
    with app.app_context():
        db = get_db()
        user = db["users"].get(db["event_teams"].rows_where("event_id = ?", [
            events.find(name)["id"]]).__next__()["user_id"])
        assert user["disabled"] == 1 and not user["deleting"]  # it holds the backup
        assert db["tiers"].count_where("name = ?", [f"ev-{name}"])  # and stays on its tier
        made = list(db["backups"].rows_where("user_id = ?", [user["id"]]))
    assert [row["state"] for row in made] == ["done"]
    assert not lxd.project_exists(lxd.backend(settings).client(), project_name(f"{name}-solo"))
