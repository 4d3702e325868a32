"""The backup directory: where backup files live, how they are written and
how they are checked.

A file is written under a temporary name (".tmp-..." in the same folder),
hashed while it is written, fsynced and renamed into place, then its
checksum (`<file>.sha256`, sha256sum's format) is written the same way and
the folder fsynced. A file counts as complete only with its checksum next
to it; a crash at any point leaves at most a temporary file or a file
without checksum, which the next run removes (clean_partial). Before a
restore touches anything, verify() reads the whole file against its
checksum, so a truncated or corrupted backup is refused.

Files are LXD's backup tarballs, compressed by Warren as they stream in
(zstd, "<time>-<n>.tar.zst", readable by `zstd -d`) or kept as they are
("none", ".tar"; an off-host copy compresses and deduplicates by itself).
python-zstandard does the compressing: it releases the GIL and is the
reference binding of the zstd library.
"""
import errno
import hashlib
import os
import queue
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import zstandard

from .errors import Conflict, WarrenError
from .units import approximate_size

TEMP_PREFIX = ".tmp-"
SUM_SUFFIX = ".sha256"
CHUNK = 1024 * 1024
COMPRESSIONS = {"zstd": ".tar.zst", "none": ".tar"}
ZSTD_LEVEL = 3  # zstd's own default: several hundred MB/s on one core
QUEUED_CHUNKS = 16  # at most this many chunks wait for the disk (about 16 MiB)
FLUSH_BYTES = 64 * 1024 * 1024


class BackupDiskFull(WarrenError):
    """The backup directory's file system has no room left."""


class CorruptBackup(Conflict):
    """A backup file is missing, truncated or altered: its checksum does not match."""


def _folder(root: str, relative: str) -> Path:
    path = Path(root, relative).parent
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _fsync_dir(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def disk_full_message(root: str) -> str:
    """What the admin reads when the backup disk is full."""
    usage = shutil.disk_usage(root)
    return (f"the backup disk is full: {approximate_size(usage.free)} free of "
            f"{approximate_size(usage.total)} in {root}; older backups are kept. Free some "
            "room or give WARREN_BACKUP_DIR a larger disk.")


@contextmanager
def _disk_errors(root: str):
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupDiskFull(disk_full_message(root)) from None
        raise WarrenError(f"writing in the backup directory failed: {error}") from None


class _Disk:
    """Where _write_atomically's chunks go: a thread of its own hashes and
    writes them, so the download and the compression go on meanwhile, and a
    second one has the kernel write back every FLUSH_BYTES, so the final
    fsync has little left to wait for. put() raises what the writing hit."""

    def __init__(self, handle: int):
        self.handle, self.size, self.digest = handle, 0, hashlib.sha256()
        self._chunks: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._error: BaseException | None = None
        self._written = False  # the writer is done
        self._dirty = threading.Event()
        self._threads = [threading.Thread(target=self._write, name="backup-write", daemon=True),
                         threading.Thread(target=self._flush, name="backup-flush", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _write(self) -> None:
        unflushed = 0
        try:
            while (chunk := self._chunks.get()) is not None:
                if self._error is not None:
                    continue  # drain: the producer learns of it at its next put()
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.handle, view):]
                self.digest.update(chunk)
                self.size += len(chunk)
                unflushed += len(chunk)
                if unflushed >= FLUSH_BYTES:
                    unflushed = 0
                    self._dirty.set()
        except BaseException as error:  # noqa: BLE001 - handed to the producer
            self._error = error
            while self._chunks.get() is not None:
                pass
        finally:
            self._written = True  # before the wake-up: the flusher reads it after its clear()
            self._dirty.set()

    def _flush(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            last = self._written
            try:
                os.fdatasync(self.handle)
            except OSError as error:
                self._error = self._error or error
                return
            if last:
                return

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._chunks.put(bytes(chunk))

    def finish(self) -> None:
        """Wait for every chunk to be written and synced; raise what went wrong."""
        self._chunks.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error
        os.fsync(self.handle)


def _write_atomically(path: Path, fill: Callable[[Callable[[bytes], None]], None]) -> tuple[int, str]:
    """Write path through a temporary file; (size, sha256) of what was written."""
    temp = path.with_name(TEMP_PREFIX + path.name)
    handle = os.open(temp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    disk = _Disk(handle)
    try:
        try:
            fill(disk.put)
        finally:
            disk.finish()  # also when fill failed: the threads end before the file goes
    except BaseException:
        os.close(handle)
        temp.unlink(missing_ok=True)
        raise
    os.close(handle)
    os.rename(temp, path)
    return disk.size, disk.digest.hexdigest()


class _Sink:
    """A file-like end for zstandard's writer that hands each piece to write()."""

    def __init__(self, write: Callable[[bytes], None]):
        self._write = write

    def write(self, data) -> int:
        self._write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def compressed(write: Callable[[bytes], None], compression: str,
               fill: Callable[[Callable[[bytes], None]], None]) -> None:
    """fill(write) with what it writes compressed on its way to write()."""
    if compression == "none":
        fill(write)
        return
    # threads=1: zstd compresses in a thread of its own while this one downloads.
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=1)
    with compressor.stream_writer(_Sink(write), closefd=False) as stream:
        fill(stream.write)


def tarball(path: Path) -> Iterator[bytes]:
    """The uncompressed tarball of a backup file, chunk by chunk."""
    with open(path, "rb") as handle:
        if path.name.endswith(COMPRESSIONS["zstd"]):
            reader = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True)
            yield from iter(lambda: reader.read(CHUNK), b"")
        else:
            yield from iter(lambda: handle.read(CHUNK), b"")


def write_backup(root: str, relative: str,
                 fill: Callable[[Callable[[bytes], None]], None]) -> tuple[int, str]:
    """Write a backup file at root/relative: fill(write) calls write(chunk)
    for each chunk. Its checksum goes next to it once it is complete;
    (size, sha256). BackupDiskFull when the disk has no room (nothing of
    this file is left behind)."""
    path = Path(root, relative)
    with _disk_errors(root):
        folder = _folder(root, relative)
        path.unlink(missing_ok=True)
        Path(str(path) + SUM_SUFFIX).unlink(missing_ok=True)
        try:
            size, checksum = _write_atomically(path, fill)
            line = f"{checksum}  {path.name}\n".encode()
            _write_atomically(Path(str(path) + SUM_SUFFIX), lambda write: write(line))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
    return size, checksum


def verify(root: str, relative: str, expected: str | None = None) -> Path:
    """The backup file, once its content matches its checksum file (and the
    expected sha256, the one recorded when it was made); CorruptBackup
    naming what is wrong otherwise."""
    path = Path(root, relative)
    sums = Path(str(path) + SUM_SUFFIX)
    try:
        recorded = sums.read_text().split()[0]
    except (OSError, IndexError):
        raise CorruptBackup(f"the backup {relative} has no checksum file; it is incomplete "
                            "and cannot be restored") from None
    if expected and recorded != expected:
        raise CorruptBackup(f"the checksum file of {relative} was changed; it cannot be trusted")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
    except OSError as error:
        raise CorruptBackup(f"the backup {relative} cannot be read: {error.strerror}") from None
    if digest.hexdigest() != recorded:
        raise CorruptBackup(f"the backup {relative} is damaged or truncated: its sha256 does "
                            "not match the one recorded when it was made; nothing was changed")
    return path


def remove(root: str, relative: str) -> None:
    """Delete a backup file and its checksum (absent: nothing to do)."""
    path = Path(root, relative)
    Path(str(path) + SUM_SUFFIX).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def clean_partial(root: str, folder: str) -> list[str]:
    """Remove what interrupted writes left in root/folder: temporary files
    and files without their checksum; the names removed."""
    base = Path(root, folder)
    if not base.is_dir():
        return []
    removed = []
    for path in sorted(base.iterdir()):
        incomplete = path.name.startswith(TEMP_PREFIX) or (
            not path.name.endswith(SUM_SUFFIX) and not Path(str(path) + SUM_SUFFIX).exists())
        if incomplete and path.is_file():
            path.unlink()
            removed.append(path.name)
    return removed


def complete_files(root: str, folder: str) -> list[str]:
    """The complete backup files in root/folder (with their checksum), by name."""
    base = Path(root, folder)
    if not base.is_dir():
        return []
    return sorted(path.name for path in base.iterdir()
                  if not path.name.startswith(TEMP_PREFIX) and not path.name.endswith(SUM_SUFFIX)
                  and Path(str(path) + SUM_SUFFIX).exists())
