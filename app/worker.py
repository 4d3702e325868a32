"""The provisioning worker: threads that claim jobs from the outbox and run
them, woken at once by a datagram on WARREN_WORKER_SOCKET (and polling every
WARREN_WORKER_POLL_SECONDS in case a wake-up is lost)."""
import faulthandler
import logging
import os
import socket
import sys
import threading
import time

from . import (backups, certificates, domains, events, forwards, hostroutes, ingress, isolation, jobs, leases,
               maintenance, members, profile_changes, projects, provisioning, reconcile, records, retention,
               sessions, snapshots)
from .parallelism import BuildSlots
from .profiles import current_profiles
from .store import get_db

log = logging.getLogger(__name__)


def _lines(count: int, text: str) -> list[str]:
    return [f"{count} {text}"] if count else []


# The periodic passes, in order; each is (db, settings) -> lines of what it
# did, and runs in its own guard (one failing never stops the next), and
# each runs its items in their own guards too (app/passes.py).
PASSES = (
    ("release dead workers' jobs", lambda db, _settings: _lines(jobs.release_dead(db), "job(s) released")),
    ("purge expired sessions", lambda db, _settings: _lines(sessions.purge_expired(db), "session(s) purged")),
    # Before reconcile: names an older Warren marked get their marker moved first.
    ("DNS records", records.sync_all),
    ("reconcile", reconcile.reconcile),
    ("leases", lambda db, _settings: leases.check(db)),
    # Before member deletions: an event removed with keep=none marks its teams' accounts.
    ("events", events.advance),
    # Profile files edited on disk: rows count the new limits, projects get them.
    ("profile limits on rows", lambda db, _settings: _lines(
        profile_changes.align_rows(db, current_profiles()), "row(s) given their profile's limits")),
    ("profile sync", lambda db, settings: projects.sync_profiles(settings, db)),
    ("member deletions", members.finish_deletions),
    ("NIC filtering", isolation.filter_existing_nics),
    ("bridge guards", lambda _db, settings: isolation.guard_bridge(settings)),
    ("instance routes", hostroutes.sync),
    ("port forwards", forwards.sync),
    ("snapshot space", snapshots.measure_all),
    ("ingress routes", ingress.sync),
    ("certificates", certificates.refresh),
    ("custom domains", domains.recheck),
    ("retention", retention.prune),
    ("backups", backups.periodic),
)


# Passes that measure rather than repair, and cost LXD a request per
# member, run at most this often in the worker (the others every
# WARREN_RECONCILE_SECONDS), so that a round stays short and a repair such
# as publishing names after a DNS outage comes within an interval or two.
# Warren checks the quota itself on every snapshot request, and each
# snapshot job measures its member again.
SPACED = {"snapshot space": 300}


def run_passes(db, settings, stopping=lambda: False,
               last_runs: dict | None = None) -> dict[str, list[str]]:
    """Run every periodic pass once, each in its own guard; what each did.
    Stops between passes once stopping() says so (the worker is shutting
    down). With last_runs (the worker's: pass name -> when it last ran), the
    SPACED passes run only when their time has come."""
    done = {}
    for name, run in PASSES:
        if stopping():
            break
        if last_runs is not None and name in SPACED:
            if time.monotonic() - last_runs.get(name, -SPACED[name]) < SPACED[name]:
                continue
            last_runs[name] = time.monotonic()
        started = time.monotonic()
        try:
            done[name] = run(db, settings) or []
        except Exception:  # never let one pass stop the others or the worker
            log.exception("the %s pass failed", name)
        took = time.monotonic() - started
        if took > SLOW_PASS_SECONDS:
            log.warning("the %s pass took %.1f s", name, took)
    return done


SLOW_PASS_SECONDS = 1.0  # a pass slower than this is logged (they all share one thread)


STOP_REPORT_SECONDS = 20
STOP_GRACE_SECONDS = 60


class Worker:
    """Runs jobs with N threads until stop() is called."""

    def __init__(self, app):
        self.app = app
        self.settings = app.config["WARREN"]
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._maintenance = threading.Event()  # set by a wake-up: an evacuation may wait
        self._threads: list[threading.Thread] = []
        self._socket = None
        # Builds at once: measured while the worker works (app/parallelism.py).
        self.builds = BuildSlots(self.settings.worker_threads)

    def start(self) -> "Worker":
        """Release dead workers' jobs, bind the wake-up socket, start the
        threads (nothing, if stop() came first)."""
        if self._stop.is_set():
            return self
        with self.app.app_context():
            released = jobs.release_dead(get_db())
            if released:
                log.info("released %d job(s) of a worker that died", released)
            resumed = maintenance.resume(get_db())
            if resumed:
                log.info("resuming %d cluster maintenance request(s) of a worker that died", resumed)
        path = self.settings.worker_socket
        if os.path.exists(path):
            os.unlink(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(path)
        self._socket.settimeout(0.5)
        self._threads = [threading.Thread(target=self._listen, name="wake", daemon=True),
                         threading.Thread(target=self._reconcile, name="reconcile", daemon=True),
                         threading.Thread(target=self._maintain, name="maintenance", daemon=True)]
        self._threads += [threading.Thread(target=self._run, name=f"job-{number}", daemon=True)
                          for number in range(self.settings.worker_threads)]
        for thread in self._threads:
            if not self._stop.is_set():
                thread.start()
        return self

    def stop(self, wait_for_passes: bool = True) -> None:
        """Finish the jobs in hand and stop (again: nothing happens). After
        STOP_GRACE_SECONDS it stops waiting: a job still running then is
        interrupted when the process exits, and runs again from its last
        step (jobs are written for that: they start by looking at what is
        already done). wait_for_passes=False leaves a periodic pass in
        progress to the process's exit (the `flask worker` command): passes
        only repair toward the desired state, and the next start runs them
        all again."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._maintenance.set()
        with self._wake:
            self._wake.notify_all()
        # A thread still busy after STOP_REPORT_SECONDS shows where it is.
        faulthandler.dump_traceback_later(STOP_REPORT_SECONDS, file=sys.stderr)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        waited = [thread for thread in self._threads if thread.ident is not None
                  and (wait_for_passes or thread.name not in ("reconcile", "maintenance"))]
        for thread in waited:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        faulthandler.cancel_dump_traceback_later()
        busy = [thread.name for thread in waited if thread.is_alive()]
        if busy:
            log.warning("stopping with %s still busy; their jobs run again on the next start",
                        ", ".join(busy))
        if self._socket is None:
            return
        self._socket.close()
        try:
            os.unlink(self.settings.worker_socket)
        except OSError:
            pass

    def wait(self) -> None:
        """Block until stop() is called."""
        self._stop.wait()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._socket.recv(64)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self._maintenance.set()
            with self._wake:
                self._wake.notify_all()

    def _maintain(self) -> None:
        """A cluster's evacuations and restores (app/maintenance.py), in a
        thread of their own: carried out as soon as one is asked for (the
        request wakes the worker), else looked for every reconcile interval.
        One lasts as long as LXD's migrations, and the periodic passes go on
        meanwhile."""
        with self.app.app_context():
            db = get_db()
            while not self._stop.is_set():
                try:
                    maintenance.advance(db, self.settings)
                except Exception:  # never let one failure stop the thread
                    log.exception("the cluster maintenance failed")
                self._maintenance.wait(self.settings.reconcile_seconds)
                self._maintenance.clear()

    def _reconcile(self) -> None:
        """At start, then periodically: the periodic passes (repairs, leases,
        profile sync, deletions, retention)."""
        with self.app.app_context():
            db = get_db()
            last_runs: dict[str, float] = {}
            while not self._stop.is_set():
                done = run_passes(db, self.settings, self._stop.is_set, last_runs)
                if any(done.values()):  # a pass may have queued jobs
                    jobs.wake_worker(self.settings)
                self._stop.wait(self.settings.reconcile_seconds)

    def _run(self) -> None:
        with self.app.app_context():
            db = get_db()
            while not self._stop.is_set():
                slot = self.builds.try_acquire()
                try:
                    job = jobs.claim(db, builds=slot)
                except Exception:  # the database was busy past its timeout: try again later
                    log.exception("claiming a job failed")
                    job = None
                if slot and (job is None or job["kind"] != jobs.BUILD):
                    self.builds.release(built=False)
                if job is None:
                    with self._wake:
                        self._wake.wait(timeout=self.settings.worker_poll_seconds)
                    continue
                self._execute(db, job)
                if job["kind"] == jobs.BUILD:
                    self.builds.release(built=True, backlog=jobs.builds_waiting(db))
                    with self._wake:  # a slot is free: a thread that found none may take it
                        self._wake.notify()

    def _execute(self, db, job: dict) -> None:
        try:
            error = provisioning.run_job(job)
        except Exception as unexpected:  # a bug: record it, keep the worker alive
            log.exception("job %s crashed", job["id"])
            error = f"internal error: {type(unexpected).__name__}"
        jobs.finish(db, job["id"], error)
        if job["kind"] == "delete":  # maybe a deleted member's last instance: finish the member
            try:
                members.finish_deletions(db, self.settings)
            except Exception:
                log.exception("finishing member deletions failed")
