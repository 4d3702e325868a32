"""Names Warren gives LXD instances are unique on the host whatever members
call themselves and their instances: two rows never share an LXD name, so
LXD never hands two members' containers the same id range."""
import sqlite3
import uuid

import pytest

from app import dns, lxd, names, projects, quotas, reconcile, store
from app.profiles import load_folder
from conftest import REPO, make_app
from support import idmap_lock, launch, member_instance, run_in


def uid_range(instance) -> range:
    """The host uids root and everyone else in the container really are."""
    inside, outside, count = (int(value) for value in run_in(instance, "cat", "/proc/self/uid_map").split())
    assert inside == 0
    return range(outside, outside + count)


def test_lxd_names_differ_where_name_and_member_hyphens_line_up():
    first = names.lxd_name("web", 7, "0123456789ab")  # john-smith's web
    second = names.lxd_name("web-john", 8, "0123456789ab")  # smith's web-john
    assert first != second and first.endswith("-7-0123456789ab")
    long_name = names.lxd_name("a" * 63, 123456, "0123456789ab")
    assert len(long_name) == 63 and long_name.endswith("-123456-0123456789ab")


def test_hyphenated_member_and_instance_names_get_disjoint_id_ranges(settings, worker, members):
    suffix = uuid.uuid4().hex[:8]
    john_smith = members(username=f"jo-s{suffix}")  # member john-smith, instance web
    smith = members(username=f"s{suffix}")  # member smith, instance web-john
    launch(john_smith, name="web")
    launch(smith, name="web-jo")
    first, second = member_instance(settings, john_smith, "web"), member_instance(settings, smith, "web-jo")
    assert first.name != second.name
    assert f"web-jo-s{suffix}" not in (first.name, second.name)  # the old, shared name
    one, other = uid_range(first), uid_range(second)
    assert one.start >= 100000 and other.start >= 100000
    assert one.stop <= other.start or other.stop <= one.start


def test_the_database_refuses_two_rows_with_one_lxd_name(app, make_user):
    make_user("alice")
    with app.app_context():
        db = store.get_db()
        row = {"user_id": 1, "project": "warren-alice", "profile": "small", "image": "busybox",
               "instance_type": "container", "ssh_keys": "", "cpu": 1, "memory": 1, "disk": 1,
               "processes": 1, "status": "ready", "created_at": store.now(), "updated_at": store.now()}
        db["instances"].insert({**row, "name": "a", "fqdn": "a.alice.zone", "lxd_name": "same"})
        with pytest.raises(sqlite3.IntegrityError):
            db["instances"].insert({**row, "name": "b", "fqdn": "b.alice.zone", "lxd_name": "same"})
        with pytest.raises(sqlite3.IntegrityError, match="lxd_name is required"):
            db["instances"].insert({**row, "name": "c", "fqdn": "c.alice.zone"})


def _database_at_version_10(path) -> sqlite3.Connection:
    db = store.connect(str(path))
    with store.transaction(db):
        for migration in store.migrations()[:10]:
            for statement in store.statements(migration.read_text()):
                db.execute(statement)
        db.execute("PRAGMA user_version = 10")
    return db


@pytest.mark.slow
def test_upgrade_keeps_unique_names_and_renames_colliding_containers(tmp_path, settings):
    """Instances made before host-unique names survive the upgrade: a unique
    old name is kept as it is, colliding ones are renamed in LXD, running."""
    suffix = uuid.uuid4().hex[:8]
    db = _database_at_version_10(tmp_path / "warren.sqlite3")
    installation = store.installation_id(db)
    members_rows = {f"jo-s{suffix}": ("web", "db"), f"s{suffix}": ("web-jo",)}
    rows = []
    with store.transaction(db):
        for username, instance_names in members_rows.items():
            user_id = db["users"].insert({"username": username, "password_hash": "x", "role": "member",
                                          "created_at": store.now(),
                                          "password_changed_at": store.now()}).last_pk
            for number, name in enumerate(instance_names):
                address = f"10.88.0.{150 + len(rows)}"
                rows.append(db["instances"].insert({
                    "user_id": user_id, "name": name, "project": names.project_name(username),
                    "profile": "small", "image": "busybox", "instance_type": "container",
                    "fqdn": f"{name}.{username}.{settings.dns_zone}", "ipv4": address, "ssh_keys": "",
                    "cpu": 1, "memory": 1, "disk": 1, "processes": 1, "status": "ready",
                    "dns_state": "published", "created_at": store.now(),
                    "updated_at": store.now()}).last_pk)
    db.conn.close()
    profiles = load_folder(REPO / "profiles")
    client = lxd.backend(settings).client()
    made = []
    try:
        for username, instance_names in members_rows.items():
            project = names.project_name(username)
            lxd.ensure_project(client, project, projects.project_config(
                quotas.TIERS["full"], settings.lxd_network, installation), "test")
            scoped = lxd.backend(settings).client(project=project)
            small = profiles["small"]
            lxd.ensure_profile(scoped, "small", small.lxd_config(),
                               small.lxd_devices(settings.lxd_storage_pool, settings.lxd_network), "")
            made.append(project)
            for name in instance_names:  # named the old way, <name>-<member>
                row_id = rows.pop(0)
                instance = lxd.create_instance(scoped, f"{name}-{username}", "busybox", profiles=["small"],
                                               lock_path=idmap_lock(),
                                               config={"security.idmap.isolated": "true",
                                                       "user.warren.id": str(row_id),
                                                       "user.warren.installation": installation})
                lxd.start_instance(instance)
        app = make_app(tmp_path)  # migrates to the current schema
        with app.app_context():
            db = store.get_db()
            upgraded = {row["name"]: row["lxd_name"] for row in db["instances"].rows}
            assert upgraded["db"] == f"db-jo-s{suffix}"  # unique: kept, its container untouched
            assert upgraded["web"] != upgraded["web-jo"]
            assert upgraded["web"].endswith(f"-{installation}") and upgraded["web-jo"].endswith(f"-{installation}")
            actions = reconcile.reconcile(db, app.config["WARREN"])
            assert sorted(action.split(" to ")[0] for action in actions if action.startswith("renamed")) == \
                [f"renamed instance web-jo-s{suffix}"] * 2
            assert reconcile.reconcile(db, app.config["WARREN"]) == []  # nothing left to repair
        for username, instance_names in members_rows.items():
            states = lxd.instance_states(
                lxd.backend(settings).client(project=names.project_name(username)))
            assert states == {upgraded[name]: "Running" for name in instance_names}
    finally:
        for project in made:
            lxd.delete_project(lxd.backend(settings), project)
        zone = dns.zone_from_settings(settings)
        for username, instance_names in members_rows.items():  # reconcile published them
            for name in instance_names:
                dns.remove_name(zone, f"{name}.{username}.{settings.dns_zone}",
                                names.dns_owner(username, installation))
