"""The job registry: every kind jobs.enqueue accepts has a handler in the
worker, and no handler waits for a kind nobody may enqueue; jobs held back
while their instance's cluster member is offline."""
from datetime import timedelta

import pytest
from support import instance_row

from app import jobs, provisioning
from app.errors import WarrenError
from app.store import get_db, transaction


def test_every_job_kind_has_exactly_one_handler():
    assert set(provisioning.HANDLERS) == set(jobs.KINDS)


def test_an_unknown_kind_is_refused_before_anything_is_written():
    with pytest.raises(WarrenError, match="unknown instance job kind 'reboot'"):
        jobs.enqueue(None, 1, "reboot")


# ---- jobs held back while their instance's cluster member is offline ----------------
# (the real thing, a killed member of a real cluster, is in tests/test_cluster.py)

def _queue(app, user_id):
    """Instance a with a stop then a snapshots job; instance b with a backup."""
    with app.app_context():
        db = get_db()
        with transaction(db):
            a, b = (instance_row(db, user_id, name, "ready", None) for name in ("a", "b"))
            db["instances"].update(a, {"location": "m3"})
            jobs.enqueue(db, a, "stop")
            jobs.enqueue(db, a, "snapshots")
            backup = db["backups"].insert({"instance_id": b, "user_id": user_id, "reason": "schedule",
                                           "created_at": "x"}).last_pk
            jobs.enqueue(db, b, "backup", backup_id=backup)
    return a, b


def test_a_held_job_waits_keeps_its_instances_jobs_in_order_and_holds_up_no_backup(app, make_user):
    a, _ = _queue(app, make_user("alice")["id"])
    with app.app_context():
        db = get_db()
        stop = jobs.claim(db)
        assert (stop["kind"], stop["attempts"]) == ("stop", 1)
        with transaction(db):
            assert jobs.hold(db, stop["id"], "m3 is offline", timedelta(minutes=1)) is True
        jobs.finish(db, stop["id"])  # what the worker does after any job: no effect on a held one
        assert db["jobs"].get(stop["id"])["state"] == "pending"
        # a's snapshots job stays behind its held stop; b's backup is not held up by it
        assert jobs.claim(db)["kind"] == "backup"
        assert jobs.claim(db) is None
        db.execute("UPDATE jobs SET not_before = '2000-01-01T00:00:00+00:00' WHERE id = ?", [stop["id"]])
        again = jobs.claim(db)
        assert (again["id"], again["attempts"]) == (stop["id"], 1)  # a hold is not an attempt
        with transaction(db):
            assert jobs.hold(db, stop["id"], "m3 is offline", timedelta(minutes=1)) is False  # told once


def test_the_worker_holds_a_job_of_an_instance_on_an_offline_member_and_says_so_once(
        app, make_user, monkeypatch):
    from app import offline
    a, _ = _queue(app, make_user("alice")["id"])
    monkeypatch.setattr(offline, "offline_reason",
                        lambda settings, instance: f"m3, the cluster member {instance['name']} runs on, "
                                                   "is offline")
    with app.app_context():
        db = get_db()
        for _ in range(2):
            job = jobs.claim(db)
            assert job["kind"] == "stop"
            assert provisioning.run_job(job) is None
            jobs.finish(db, job["id"])
            db.execute("UPDATE jobs SET not_before = NULL WHERE id = ?", [job["id"]])
        assert db["jobs"].get(job["id"])["state"] == "pending"
        (event,) = db["events"].rows_where("instance_id = ?", [a])
        assert event["message"] == ("m3, the cluster member a runs on, is offline: the stop is queued and "
                                    "runs by itself when m3 is back.")
        (entry,) = db["audit"].rows_where("action = 'instance.stop'")
        assert (entry["actor"], entry["result"]) == ("warren", "queued")
