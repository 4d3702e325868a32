"""How often each API token is used (its count, last use and where from, and
the minute its rate limit counts in), kept without a database write per
request.

A write per request made every API call a write transaction: the calls of
all gunicorn workers queued on SQLite's one write lock, and a waiting
writer backs off in sleeps of up to 100 ms. Instead each process tallies a
token's uses in memory and adds them to the token's row (one UPDATE) when
it last did so WRITE_SECONDS ago or more, or when its unwritten uses of the
minute reach 1/SHARE of what the database said was left of the token's
allowance. So a token's first use in a process is written at once, one in
steady use costs a write every WRITE_SECONDS per process, and a token near
its limit is written on every request: one process counts the limit
exactly, and a burst spread over W processes gets at most about W/SHARE of
the limit more (the others' unwritten share). Uses still unwritten when a
process exits are written then (atexit); a process killed outright loses
at most WRITE_SECONDS of its counts.
"""
import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from .store import StoreError, connect

log = logging.getLogger(__name__)

WRITE_SECONDS = 10.0
SHARE = 8


@dataclass
class _Tally:
    """One token's uses in this process since its last write."""
    minute: str = ""  # the minute the rate limit counts in (YYYY-MM-DDTHH:MM)
    unwritten: int = 0  # uses not yet added to `uses`
    in_minute: int = 0  # of those, uses in `minute` not yet added to `window_uses`
    seen: int = 0  # window_uses of `minute` as the last write returned it (every process's)
    written_at: float = float("-inf")  # time.monotonic() of the last write
    last_at: str = ""
    last_from: str = ""


_lock = threading.Lock()
_tallies: dict[tuple[str, int], _Tally] = {}


def record(db, database: str, token_id: int, stamp: str, address: str, limit: int) -> int:
    """Count one use of a token at `stamp` from `address`; the token's uses
    in this minute so far, across processes as far as they are written, to
    judge against its `limit` a minute."""
    minute = stamp[:16]
    with _lock:
        tally = _tallies.setdefault((database, token_id), _Tally())
        if tally.minute != minute:
            tally.minute, tally.in_minute, tally.seen = minute, 0, 0
        tally.unwritten += 1
        tally.in_minute += 1
        tally.last_at, tally.last_from = stamp, address[:64]
        due = (time.monotonic() - tally.written_at >= WRITE_SECONDS
               or tally.in_minute >= max(1, (limit - tally.seen) // SHARE))
        if not due:
            return tally.seen + tally.in_minute
        batch = _take(tally)
    seen = _write(db, token_id, batch)
    with _lock:
        if tally.minute == minute and seen is not None:
            tally.seen = max(tally.seen, seen)
        return tally.seen + tally.in_minute


class _Batch(NamedTuple):
    tally: _Tally
    uses: int
    in_minute: int
    minute: str
    last_at: str
    last_from: str


def _take(tally: _Tally) -> _Batch:
    """The tally's unwritten uses, handed to one writer (under _lock)."""
    batch = _Batch(tally, tally.unwritten, tally.in_minute, tally.minute, tally.last_at,
                   tally.last_from)
    tally.unwritten = tally.in_minute = 0
    tally.written_at = time.monotonic()
    return batch


def _write(db, token_id: int, batch: _Batch) -> int | None:
    """Add a batch of uses to the token's row; the minute's count it now
    holds (None when the token is gone). A failed write puts them back.
    A batch of an earlier minute or use (a slower thread's) changes neither
    the window nor the last use."""
    try:
        row = db.execute(
            "UPDATE api_tokens SET uses = uses + :uses, "
            "last_used_from = CASE WHEN :at >= coalesce(last_used_at, '') THEN :from "
            "ELSE last_used_from END, "
            "last_used_at = max(coalesce(last_used_at, ''), :at), "
            "window_uses = CASE WHEN window_start = :minute THEN window_uses + :in_minute "
            "WHEN window_start > :minute THEN window_uses ELSE :in_minute END, "
            "window_start = max(coalesce(window_start, ''), :minute) "
            "WHERE id = :id RETURNING window_uses",
            {"uses": batch.uses, "at": batch.last_at, "from": batch.last_from,
             "minute": batch.minute, "in_minute": batch.in_minute, "id": token_id}).fetchone()
    except BaseException:
        with _lock:
            batch.tally.unwritten += batch.uses
            if batch.tally.minute == batch.minute:
                batch.tally.in_minute += batch.in_minute
        raise
    return row[0] if row else None


def write_pending() -> None:
    """Write every token's unwritten uses now (at exit)."""
    with _lock:
        batches = [(database, token_id, _take(tally))
                   for (database, token_id), tally in _tallies.items() if tally.unwritten]
    for database, token_id, batch in batches:
        if not os.path.exists(database):
            continue  # a scratch database already removed
        try:
            db = connect(database)
        except StoreError as error:
            log.warning("token uses not written: %s", error)
            continue
        try:
            _write(db, token_id, batch)
        except Exception as error:  # at exit: say so, never raise
            log.warning("token uses of token %s not written: %s", token_id, error)
        finally:
            db.conn.close()


atexit.register(write_pending)
