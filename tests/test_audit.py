"""The audit log stays bounded whatever members send, and a member's
history belongs to their account, not to their name."""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from app import accounts, audit, lxd, members, projects, quotas, retention
from app.names import project_name
from app.store import get_db
from conftest import Auth
from support import PASSWORD, csrf_token

HUGE = "x" * 400_000  # two of them stay under the 1 MiB request limit


def audit_rows(app):
    with app.app_context():
        return list(get_db()["audit"].rows)


def test_huge_input_never_reaches_the_audit_log_raw(app, client, make_user):
    make_user("alice")
    Auth(client).login("alice")
    token = csrf_token(client.get("/instances/new").get_data(as_text=True))
    response = client.post("/instances/new", data={"name": HUGE, "profile": HUGE, "image": "busybox",
                                                   "keys": "", "csrf_token": token})
    assert response.status_code == 422
    token = csrf_token(client.get("/requests").get_data(as_text=True))
    response = client.post("/requests", data={"memory": "8GiB", "reason": HUGE, "csrf_token": token})
    assert response.status_code == 422
    rows = audit_rows(app)
    assert {row["action"] for row in rows} >= {"instance.request", "quota.request"}
    for row in rows:
        assert all(len(row[field] or "") <= limit for field, limit in audit.LIMITS.items()), row["action"]
    with app.app_context():
        assert get_db()["approvals"].count == 0  # the refused request stored nothing


def test_control_characters_are_not_written_to_the_log(app):
    with app.app_context():
        audit.record(get_db(), "cli", "account.create", "bad\x1b[31mname\r\nforged entry")
        (row,) = list(get_db()["audit"].rows)
    assert "\x1b" not in row["target"] and "\r" not in row["target"]


def test_a_new_account_with_a_deleted_members_name_sees_none_of_their_history(app, make_user, settings):
    make_user("boss", role="admin")
    make_user("carol")
    with app.app_context():
        boss = accounts.find_user("boss")
        members.disable(boss, "carol")
        members.delete_member(boss, "carol", "carol")
        assert members.finish_deletions(get_db(), settings) == ["carol"]
    make_user("carol")  # someone else takes the name
    client = app.test_client()
    Auth(client).login("carol", PASSWORD)
    page = client.get("/activity").get_data(as_text=True)
    assert "account.disable" not in page and "account.delete" not in page
    assert "account.create" in page  # their own entry


def test_activity_shows_entries_about_the_member_not_ones_they_acted_in(app, make_user):
    make_user("dave", role="admin")
    make_user("erin")
    with app.app_context():
        dave = accounts.find_user("dave")
        members.disable(dave, "erin")  # dave acts; erin is the member concerned
    client = app.test_client()
    Auth(client).login("dave", PASSWORD)
    assert "account.disable" not in client.get("/activity").get_data(as_text=True)


def test_reserved_and_system_names_are_refused(app, make_user):
    import pytest
    from app.errors import ValidationError
    for name in ("warren", "cli", "ns1", "ns", "admin", "root", "hostmaster"):
        with app.app_context(), pytest.raises(ValidationError, match="reserved"):
            accounts.create_user(name, "long enough password")
    with app.app_context():
        assert accounts.ensure_admin("admin", "long enough password") is None  # the configured first admin
        assert accounts.find_user("admin")["role"] == "admin"


def _days_ago(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")


def test_retention_removes_old_rows_and_keeps_recent_ones(app, make_user, settings):
    make_user("alice")
    with app.app_context():
        db = get_db()
        row = {"user_id": 1, "project": "warren-alice", "profile": "small", "image": "busybox",
               "instance_type": "container", "ssh_keys": "", "cpu": 1, "memory": 1, "disk": 1,
               "processes": 1, "status": "ready", "created_at": _days_ago(1), "updated_at": _days_ago(1)}
        db["instances"].insert({**row, "id": 5, "name": "a", "fqdn": "a.alice.zone", "lxd_name": "a-5"})
        for age in (400, 1):
            db["jobs"].insert({"instance_id": 5, "kind": "restart", "state": "done", "attempts": 1,
                               "created_at": _days_ago(age), "finished_at": _days_ago(age)})
            db["audit"].insert({"at": _days_ago(age + settings.audit_retention_days - 2), "actor": "cli",
                                "action": "x", "target": "y", "result": "ok"})
        db["jobs"].insert({"instance_id": 5, "kind": "restart", "state": "pending", "attempts": 0,
                           "created_at": _days_ago(400)})  # not finished: kept whatever its age
        for number in range(settings.events_per_instance + 30):
            db["events"].insert({"instance_id": 5, "at": _days_ago(1), "step": "x", "message": str(number)})
        before_audit = db["audit"].count
        lines = retention.prune(db, settings)
        assert lines and db["jobs"].count == 2 and db["audit"].count == before_audit - 1
        kept = [row["message"] for row in db["events"].rows_where(order_by="id")]
        assert len(kept) == settings.events_per_instance and kept[-1] == str(settings.events_per_instance + 29)
        assert retention.prune(db, settings) == []


@pytest.mark.lxd
def test_two_job_threads_finishing_one_deletion_remove_the_member_once(app, make_user, settings):
    """Each job thread that deletes one of a member's last instances calls
    finish_deletions; two at once must not both remove the project (the
    second failed with "Project not found" and audited a failed deletion)."""
    make_user("boss", role="admin")
    make_user("frank")
    name = project_name("frank")
    lxd.ensure_project(lxd.backend(settings).client(), name,
                       projects.project_config(quotas.TIERS["full"], settings.lxd_network, "tests"), "test")
    try:
        with app.app_context():
            members.delete_member(accounts.find_user("boss"), "frank", "frank")
        start = threading.Barrier(4)

        def finish():
            with app.app_context():
                start.wait()
                return members.finish_deletions(get_db(), settings)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: finish(), range(4)))
        assert sorted(results) == [[], [], [], ["frank"]]
        assert not lxd.project_exists(lxd.backend(settings).client(), name)
        entries = [(row["action"], row["result"]) for row in audit_rows(app)
                   if row["action"] == "account.deleted"]
        assert entries == [("account.deleted", "ok")]
    finally:
        lxd.delete_project(lxd.backend(settings), name)
