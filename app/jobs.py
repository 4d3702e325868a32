"""The job outbox: rows in the jobs table that the worker drains.

A job is claimed in a BEGIN IMMEDIATE transaction with a lease
(claimed_until); a worker that dies leaves the lease to run out and the job
is claimed again. Jobs of one instance run one at a time, in order. The web
process wakes the worker with a datagram on a unix socket, so a new job
starts at once instead of at the next poll.
"""
import os
import socket
from datetime import datetime, timedelta, timezone

from .store import now, transaction

LEASE = timedelta(minutes=5)


def enqueue(db, instance_id: int, kind: str) -> int:
    """Add a job (inside the caller's transaction)."""
    return db["jobs"].insert({"instance_id": instance_id, "kind": kind, "state": "pending",
                              "attempts": 0, "created_at": now()}).last_pk


def claim(db) -> dict | None:
    """Take the oldest runnable job: pending, or running with a lapsed lease,
    and no older unfinished job for the same instance."""
    stamp = now()
    until = (datetime.now(timezone.utc) + LEASE).isoformat(timespec="seconds")
    with transaction(db):
        row = db.execute(
            "SELECT j.id FROM jobs j WHERE (j.state = 'pending' OR (j.state = 'running' "
            "AND j.claimed_until < ?)) AND NOT EXISTS (SELECT 1 FROM jobs o WHERE "
            "o.instance_id = j.instance_id AND o.id < j.id AND o.state IN ('pending', 'running')) "
            "ORDER BY j.id LIMIT 1", [stamp]).fetchone()
        if row is None:
            return None
        db.execute("UPDATE jobs SET state = 'running', claimed_until = ?, claimed_by = ?, "
                   "attempts = attempts + 1 WHERE id = ?", [until, worker_id(), row[0]])
    return db["jobs"].get(row[0])


def worker_id() -> str:
    """host:pid of this worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead(db) -> int:
    """Put back jobs held by worker processes of this host that died, so
    they run again now instead of when their lease runs out."""
    host = socket.gethostname()
    released = 0
    for job_id, claimed_by in db.execute(
            "SELECT id, claimed_by FROM jobs WHERE state = 'running' AND claimed_by LIKE ?",
            [f"{host}:%"]).fetchall():
        pid = int(claimed_by.rsplit(":", 1)[1])
        if pid != os.getpid() and not _alive(pid):
            released += db.execute("UPDATE jobs SET state = 'pending', claimed_until = NULL, "
                                   "claimed_by = NULL WHERE id = ? AND state = 'running'",
                                   [job_id]).rowcount
    return released


def finish(db, job_id: int, error: str | None = None) -> None:
    """Mark a job done (or failed with the reason); a no-op when a delete job
    already removed itself with its instance."""
    db.execute("UPDATE jobs SET state = ?, error = ?, claimed_until = NULL, finished_at = ? "
               "WHERE id = ?", ["failed" if error else "done", error, now(), job_id])


def pending_count(db) -> int:
    """Jobs not finished yet."""
    return db["jobs"].count_where("state IN ('pending', 'running')")


def wake_worker(settings) -> None:
    """Nudge the worker; harmless when it is not listening (it also polls)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"1", settings.worker_socket)
        except OSError:
            pass
