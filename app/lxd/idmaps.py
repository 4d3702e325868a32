"""Isolated id maps: keep LXD 5.0 from handing one range to two containers.

LXD allocates a container's isolated id map (volatile.idmap.base) while it
creates or imports it, by reading the bases of every other container. A
container whose database row exists but whose base is not written yet is
read as base 0, so two creations at once can get the same range, or one
below the subordinate ids that then fails to start (measured on LXD 5.0.2:
12 parallel creations, 3 ranges given twice and 4 containers at 65536).

LXD would take a preset range (security.idmap.base), but a restricted
project refuses that key as low-level config, and allowing low-level config
would allow raw.lxc too. So Warren serialises only that window: a lock per
daemon, shared by every Warren on the host, held from the request until LXD
has written the new container's base (milliseconds), not across the image
unpack, the id shift of its files or the start.
"""
import time
from contextlib import contextmanager

import pylxd
from pylxd import exceptions as lxd_exceptions

from ..locks import HostLock

POLL_SECONDS = 0.005
BASE_KEY = "volatile.idmap.base"


def lock_path(backend) -> str:
    """The id map lock of one LXD daemon: every Warren on this host that
    creates instances through that daemon (a test run beside the real one
    too) takes the same lock, whatever its data directory."""
    return f"/run/lock/warren-lxd-create-{backend.daemon_id()}.lock"


def wait_for_base(client: pylxd.Client, name: str, operation: str) -> None:
    """Return once LXD has written the container's id map base, or the
    operation that makes it has ended (failed, or a VM: no id map)."""
    operation_id = operation.rstrip("/").rsplit("/", 1)[-1]
    while True:
        try:
            config = client.api.instances[name].get().json()["metadata"]["config"]
        except lxd_exceptions.NotFound:
            config = {}
        if config.get(BASE_KEY):
            return
        try:
            status = client.api.operations[operation_id].get().json()["metadata"]["status"]
        except lxd_exceptions.NotFound:
            return  # ended and forgotten
        if status not in ("Pending", "Running"):
            return
        time.sleep(POLL_SECONDS)


@contextmanager
def allocation(path: str | None):
    """The lock around one allocation: `with allocation(path) as lock:`,
    then send the request (lock.acquire() may come later, e.g. once an
    upload has been read) and wait_for_base(); released on leaving."""
    lock = HostLock(path)
    try:
        yield lock
    finally:
        lock.release()
