"""Instance backups through LXD's backup API: make one
(/1.0/instances/<name>/backups), stream its tarball out, delete LXD's own
copy, and import a tarball as an instance (POST /1.0/instances with the
tarball as the body).

LXD first writes the tarball into its own storage (/var/lib/lxd/backups),
then serves it; Warren streams it to the backup directory and deletes
LXD's copy at once. A copy a crashed worker left behind expires by itself
(expires_at) and is replaced when the job runs again.

LXD makes the tarball uncompressed; Warren compresses it as it streams
(app/backup_files.py). LXD 5.0.2 cannot import its own compressed
optimized btrfs backups of any size: it reads the tarball once for the
header, cancels that decompressor, and starts a second one on the same
file while the first one's copy still reads it, so the second gets a
torn stream, exits, and the import waits on its pipe for ever (measured:
every import of a 300 MB zstd backup hung; the same tarball uncompressed
imported in 1 s).
"""
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

import pylxd
from pylxd import exceptions as lxd_exceptions

from .client import translated
from . import idmaps

# Pools whose driver LXD can back up in its own format (btrfs send streams,
# zfs send): faster to make and to import than a tarball of every file.
OPTIMIZED_DRIVERS = ("btrfs", "zfs")
CHUNK = 1024 * 1024


def pool_driver(client: pylxd.Client, pool: str) -> str:
    """The storage driver of a pool (btrfs, zfs, dir, ...)."""
    with translated(f"reading storage pool {pool}"):
        return client.api.storage_pools[pool].get().json()["metadata"]["driver"]


def _wait(client: pylxd.Client, response) -> None:
    client.operations.wait_for_operation(response.json()["operation"])


def create_backup(client: pylxd.Client, instance: str, backup: str, *, optimized: bool) -> None:
    """Have LXD make a backup of the instance (without its snapshots), under
    the name `backup`; one of that name left over from an interrupted run is
    replaced."""
    node = client.api.instances[instance].backups
    with translated(f"backing up instance {instance}"):
        try:
            _wait(client, node[backup].delete())
        except lxd_exceptions.NotFound:
            pass
        expires = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        _wait(client, node.post(json={
            "name": backup, "expires_at": expires, "instance_only": True,
            "optimized_storage": optimized, "compression_algorithm": "none"}))


def export_backup(client: pylxd.Client, instance: str, backup: str,
                  write: Callable[[bytes], None]) -> None:
    """Stream LXD's tarball of a backup to write(), chunk by chunk."""
    node = client.api.instances[instance].backups[backup].export
    with translated(f"downloading backup {backup} of {instance}"):
        response = node.get(stream=True, is_api=False)
        try:
            for chunk in response.iter_content(CHUNK):
                write(chunk)
        finally:
            response.close()


def delete_backup(client: pylxd.Client, instance: str, backup: str) -> None:
    """Delete LXD's own copy of a backup (gone already: nothing to do)."""
    with translated(f"deleting LXD's copy of backup {backup} of {instance}"):
        try:
            _wait(client, client.api.instances[instance].backups[backup].delete())
        except lxd_exceptions.NotFound:
            pass


def import_backup(client: pylxd.Client, tarball: Iterable[bytes], pool: str, name: str, *,
                  lock_path: str | None = None) -> None:
    """Create the instance `name` (stopped) in the client's project from an
    uncompressed backup tarball (its chunks, sent as they come), on the
    pool. LXD hands out its isolated id map during the import, so with
    lock_path the host's id map lock is taken as for a creation (see
    app/lxd/idmaps.py): LXD reads the whole upload before it makes the
    instance, so the lock is taken once the last chunk has gone, not while
    the upload runs."""
    with idmaps.allocation(lock_path) as lock, \
            translated(f"importing instance {name} from a backup"):
        def body():
            yield from tarball
            lock.acquire()

        operation = client.api.instances.post(
            data=body(), headers={"Content-Type": "application/octet-stream",
                                  "X-LXD-pool": pool, "X-LXD-name": name}).json()["operation"]
        if lock_path is not None:
            idmaps.wait_for_base(client, name, operation)
        lock.release()
        client.operations.wait_for_operation(operation)
