"""The provisioning worker: threads that claim jobs from the outbox and run
them, woken at once by a datagram on WARREN_WORKER_SOCKET (and polling every
WARREN_WORKER_POLL_SECONDS in case a wake-up is lost)."""
import logging
import os
import socket
import threading

from . import jobs, leases, members, profile_changes, projects, provisioning, reconcile, sessions
from .profiles import current_profiles
from .store import get_db

log = logging.getLogger(__name__)


class Worker:
    """Runs jobs with N threads until stop() is called."""

    def __init__(self, app):
        self.app = app
        self.settings = app.config["WARREN"]
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._socket = None

    def start(self) -> "Worker":
        """Release dead workers' jobs, bind the wake-up socket, start the threads."""
        with self.app.app_context():
            released = jobs.release_dead(get_db())
            if released:
                log.info("released %d job(s) of a worker that died", released)
        path = self.settings.worker_socket
        if os.path.exists(path):
            os.unlink(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(path)
        self._socket.settimeout(0.5)
        self._threads = [threading.Thread(target=self._listen, name="wake", daemon=True),
                         threading.Thread(target=self._reconcile, name="reconcile", daemon=True)]
        self._threads += [threading.Thread(target=self._run, name=f"job-{number}", daemon=True)
                          for number in range(self.settings.worker_threads)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Finish the jobs in hand and stop (again: nothing happens)."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=120)
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
            with self._wake:
                self._wake.notify_all()

    def _reconcile(self) -> None:
        """At start, then periodically: repair drift between store, LXD and DNS,
        and act on leases that came due."""
        with self.app.app_context():
            db = get_db()
            while not self._stop.is_set():
                try:
                    jobs.release_dead(db)
                    sessions.purge_expired(db)
                    reconcile.reconcile(db, self.settings)
                    if leases.check(db):
                        jobs.wake_worker(self.settings)
                    # Profile files edited on disk: rows count the new limits, projects get them.
                    profile_changes.align_rows(db, current_profiles())
                    projects.sync_profiles(self.settings, db)
                    members.finish_deletions(db, self.settings)
                except Exception:  # never let a repair pass take the worker down
                    log.exception("reconcile pass failed")
                self._stop.wait(self.settings.reconcile_seconds)

    def _run(self) -> None:
        with self.app.app_context():
            db = get_db()
            while not self._stop.is_set():
                try:
                    job = jobs.claim(db)
                except Exception:  # the database was busy past its timeout: try again later
                    log.exception("claiming a job failed")
                    job = None
                if job is None:
                    with self._wake:
                        self._wake.wait(timeout=self.settings.worker_poll_seconds)
                    continue
                self._execute(db, job)

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
