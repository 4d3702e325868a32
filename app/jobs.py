"""The job outbox: rows in the jobs table that the worker drains.

A job is claimed in a BEGIN IMMEDIATE transaction with a lease
(claimed_until); a worker that dies leaves the lease to run out and the job
is claimed again. Jobs of one instance run one at a time, in order. The web
process wakes the worker with a datagram on a unix socket, so a new job
starts at once instead of at the next poll.

Fair share: an instance has at most one power job waiting (a repeat merges
into it, the last wish winning), a member may have at most
WARREN_MEMBER_JOB_LIMIT actions waiting (provisioning is bounded by the
instances quota, deletion is never refused), and the worker claims first for the
member with the fewest jobs running, so one member's backlog never holds
up another member's request by more than the job in hand per thread.
"""
import os
import socket
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone

from .errors import Conflict, WarrenError
from .statuses import sql_list
from .store import now, transaction

LEASE = timedelta(minutes=5)
POWER = ("start", "stop", "restart")
# Jobs that bring LXD in line with the store: one waiting per instance is enough
# (a snapshots job does every snapshot action the instance's rows still ask for).
SYNC = ("forwards", "ingress", "snapshots")
# Jobs of a member rather than of one instance (publishing their DNS
# records, app/records.py): one waiting per member is enough.
MEMBER = ("records",)
# Jobs on a backup of an instance (jobs.backup_id, app/backups.py, app/restores.py).
BACKUP = ("backup", "restore")
# Background jobs: claimed only when no member's job is waiting, and one at a
# time on the whole host, so backups never starve members' requests.
BACKGROUND = ("backup",)
# Every job kind there is (the worker's handler for each is in provisioning.HANDLERS).
# An admin's move of an instance to another cluster member (app/maintenance.py).
MOVE = ("move",)
KINDS = frozenset(("provision", "delete") + POWER + SYNC + MEMBER + BACKUP + MOVE)
# The job the worker thread is running now (set by provisioning.run_job).
current: ContextVar[dict | None] = ContextVar("current_job", default=None)


def enqueue(db, instance_id: int, kind: str, member_limit: int | None = None,
            backup_id: int | None = None) -> int:
    """Add a job (inside the caller's transaction) and return its id.

    A power job merges into one already waiting for the instance, and a
    sync job is not queued twice. With
    member_limit (requests a member makes), Conflict when the member has
    that many jobs waiting already."""
    if kind not in KINDS or kind in MEMBER:
        raise WarrenError(f"unknown instance job kind {kind!r}")
    if kind in POWER:
        waiting = db.execute("SELECT id FROM jobs WHERE instance_id = ? AND state = 'pending' "
                             f"AND kind IN {sql_list(POWER)}", [instance_id]).fetchone()
        if waiting is not None:
            db.execute("UPDATE jobs SET kind = ? WHERE id = ?", [kind, waiting[0]])
            return waiting[0]
    if kind in SYNC:
        waiting = db.execute("SELECT id FROM jobs WHERE instance_id = ? AND state = 'pending' "
                             "AND kind = ?", [instance_id, kind]).fetchone()
        if waiting is not None:
            return waiting[0]
    if member_limit is not None:
        queued = waiting_for_member(db, instance_id)
        if queued >= member_limit:
            raise Conflict(f"You have {queued} actions waiting for the worker already (the limit "
                           f"is {member_limit}); try again when they are done.")
    if (kind in BACKUP) != (backup_id is not None):
        raise WarrenError(f"a {kind} job {'needs' if kind in BACKUP else 'takes no'} backup")
    return db["jobs"].insert({"instance_id": instance_id, "kind": kind, "state": "pending",
                              "attempts": 0, "created_at": now(), "backup_id": backup_id}).last_pk


def enqueue_member(db, user_id: int, kind: str) -> int:
    """Add a member's job (inside the caller's transaction) unless one of
    that kind is waiting already; its id."""
    if kind not in MEMBER:
        raise WarrenError(f"unknown member job kind {kind!r}")
    waiting = db.execute("SELECT id FROM jobs WHERE user_id = ? AND instance_id IS NULL "
                         "AND state = 'pending' AND kind = ?", [user_id, kind]).fetchone()
    if waiting is not None:
        return waiting[0]
    return db["jobs"].insert({"user_id": user_id, "kind": kind, "state": "pending",
                              "attempts": 0, "created_at": now()}).last_pk


def waiting_for_member(db, instance_id: int) -> int:
    """Power jobs waiting (not yet running) for the member who owns this instance."""
    return db.execute(
        "SELECT count(*) FROM jobs j JOIN instances i ON i.id = j.instance_id "
        f"WHERE j.state = 'pending' AND j.kind IN {sql_list(POWER)} "
        "AND i.user_id = (SELECT user_id FROM instances WHERE id = ?)", [instance_id]).fetchone()[0]


def cancel_power(db, instance_id: int) -> int:
    """Drop the power jobs still waiting for an instance (it is being deleted)."""
    return db.execute(f"DELETE FROM jobs WHERE instance_id = ? AND state = 'pending' "
                      f"AND kind IN {sql_list(POWER)}", [instance_id]).rowcount


BUILD = "provision"  # the kind whose parallelism the worker measures (app/parallelism.py)


def claim(db, builds: bool = True) -> dict | None:
    """Take the next runnable job: pending, or running with a lapsed lease,
    with no older unfinished job for the same instance; among those, the
    oldest of the member with the fewest jobs running now. Background jobs
    (backups) run only while no other job waits (not even a build waiting
    for a build slot: a burst of builds is not slowed by the backups it
    schedules) and no other background job runs; a job held back (its
    cluster member is offline, see hold) and the jobs of its instance
    behind it hold up no background job. builds=False: any job but a
    build."""
    stamp = now()
    until = (datetime.now(timezone.utc) + LEASE).isoformat(timespec="seconds")
    with transaction(db):
        row = db.execute(
            "SELECT j.id FROM jobs j LEFT JOIN instances i ON i.id = j.instance_id "
            "WHERE ((j.state = 'pending' AND (j.not_before IS NULL OR j.not_before <= ?)) "
            "OR (j.state = 'running' AND j.claimed_until < ?)) "
            "AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.id < j.id "
            "AND o.state IN ('pending', 'running') AND (o.instance_id = j.instance_id "
            "OR (j.instance_id IS NULL AND o.instance_id IS NULL AND o.user_id = j.user_id))) "
            f"AND NOT (j.kind IN {sql_list(BACKGROUND)} AND EXISTS (SELECT 1 FROM jobs b "
            f"WHERE b.id != j.id AND ((b.kind IN {sql_list(BACKGROUND)} AND b.state = 'running' "
            f"AND b.claimed_until >= ?) OR (b.kind NOT IN {sql_list(BACKGROUND)} "
            "AND b.state = 'pending' AND NOT EXISTS (SELECT 1 FROM jobs h WHERE h.state = 'pending' "
            "AND h.instance_id = b.instance_id AND h.not_before > ?))))) "
            + ("" if builds else f"AND j.kind != '{BUILD}' ")
            + f"ORDER BY j.kind IN {sql_list(BACKGROUND)}, (SELECT count(*) FROM jobs r LEFT JOIN instances ri ON ri.id = r.instance_id "
            "WHERE r.state = 'running' AND r.claimed_until >= ? "
            "AND coalesce(r.user_id, ri.user_id) = coalesce(j.user_id, i.user_id)), j.id "
            "LIMIT 1", [stamp] * 5).fetchone()
        if row is None:
            return None
        db.execute("UPDATE jobs SET state = 'running', claimed_until = ?, claimed_by = ?, "
                   "attempts = attempts + 1, started_at = coalesce(started_at, ?) WHERE id = ?",
                   [until, worker_id(), stamp, row[0]])
    return db["jobs"].get(row[0])


def extend_lease(db, job_id: int) -> None:
    """Hold a long job's claim for another LEASE (a backup of a large
    instance outlasts one), so no other thread takes it meanwhile."""
    until = (datetime.now(timezone.utc) + LEASE).isoformat(timespec="seconds")
    db.execute("UPDATE jobs SET claimed_until = ? WHERE id = ? AND state = 'running'",
               [until, job_id])


@contextmanager
def lease_held(database: str, job: dict | None):
    """Keep renewing the current job's lease while the block runs (a backup
    or an import of a large instance outlasts one LEASE; without this,
    another thread would take the job up again meanwhile). Its own
    connection: the block's is busy in the block's thread."""
    if job is None:
        yield
        return
    from .store import connect
    done = threading.Event()

    def renew():
        db = connect(database)
        try:
            while not done.wait(LEASE.total_seconds() / 3):
                extend_lease(db, job["id"])
        finally:
            db.conn.close()
    thread = threading.Thread(target=renew, name=f"lease-{job['id']}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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


def died(claimed_by: str | None) -> bool:
    """Whether the worker process named by a claim (host:pid) is gone: one
    of this host that is no longer running (a claim by no one counts too)."""
    if not claimed_by:
        return True
    host, _, pid = claimed_by.rpartition(":")
    return host == socket.gethostname() and int(pid) != os.getpid() and not _alive(int(pid))


def release_dead(db) -> int:
    """Put back jobs held by worker processes of this host that died, so
    they run again now instead of when their lease runs out."""
    host = socket.gethostname()
    released = 0
    for job_id, claimed_by in db.execute(
            "SELECT id, claimed_by FROM jobs WHERE state = 'running' AND claimed_by LIKE ?",
            [f"{host}:%"]).fetchall():
        if died(claimed_by):
            released += db.execute("UPDATE jobs SET state = 'pending', claimed_until = NULL, "
                                   "claimed_by = NULL WHERE id = ? AND state = 'running'",
                                   [job_id]).rowcount
    return released


def finish(db, job_id: int, error: str | None = None) -> None:
    """Mark a running job done (or failed with the reason); a no-op when a
    delete job already removed itself with its instance, or when the job was
    held back (pending again)."""
    db.execute("UPDATE jobs SET state = ?, error = ?, claimed_until = NULL, finished_at = ? "
               "WHERE id = ? AND state = 'running'", ["failed" if error else "done", error, now(), job_id])


def hold(db, job_id: int, reason: str, retry: timedelta) -> bool:
    """Put a claimed job back, not to be claimed again before `retry` has
    passed (its instance's member is offline); later jobs of its instance
    keep waiting behind it, in order. Inside the caller's transaction. True
    the first time it is held for this reason (so the caller tells the
    member once)."""
    until = (datetime.now(timezone.utc) + retry).isoformat(timespec="seconds")
    before = db.execute("SELECT held FROM jobs WHERE id = ?", [job_id]).fetchone()
    db.execute("UPDATE jobs SET state = 'pending', claimed_until = NULL, claimed_by = NULL, "
               "attempts = max(attempts - 1, 0), not_before = ?, held = ? "
               "WHERE id = ? AND state = 'running'", [until, reason, job_id])
    return before is not None and before[0] != reason


def builds_waiting(db) -> bool:
    """Whether a build job waits for a worker thread."""
    return db.execute("SELECT 1 FROM jobs WHERE kind = ? AND state = 'pending' LIMIT 1",
                      [BUILD]).fetchone() is not None


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
