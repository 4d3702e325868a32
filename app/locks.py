"""Locks shared by every process on the host (flock on a file).

Warren's web workers, its worker and a test run beside it each act on the
same host-wide things (LXD's id maps, the firewall tables, the DNS key
files, the profile folder), so a thread lock is not enough for them.
"""
import fcntl
import os
import threading
from contextlib import contextmanager


@contextmanager
def held(path) -> None:
    """Hold the host lock at path (created if missing) for the block."""
    handle = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the descriptor drops the flock


class HostLock:
    """An exclusive host lock that is taken and dropped by hand; a None
    path is no lock. acquire() and release() may each come more than once."""

    def __init__(self, path: str | None):
        self.path = path
        self._handle: int | None = None

    def acquire(self) -> None:
        if self.path is None or self._handle is not None:
            return
        handle = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None


class Exclusive:
    """One thread of one process at a time on the host, re-entrant within
    the thread that holds it: `with lock:` around a read-modify-write of
    something host-wide."""

    def __init__(self, path: str):
        self._thread = threading.RLock()
        self._host = HostLock(path)
        self._depth = 0

    def __enter__(self):
        self._thread.acquire()
        if self._depth == 0:
            try:
                self._host.acquire()
            except BaseException:
                self._thread.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._host.release()
        self._thread.release()
