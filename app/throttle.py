"""Sign-in throttling kept in the database, so it holds across every gunicorn
worker. Failures are counted per client address and per user name tried from
that address, never per user name alone: an attacker who gets blocked blocks
only themself, and the account's owner still signs in from their own address.

LIMITS failures within MEMORY block the client for WINDOW after its last
failure, and each further failure doubles the wait, up to MAX_WAIT. Blocked
attempts are refused before any password hashing and are not counted, so a
client adds only a few rows a day and old rows are pruned."""
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .errors import TooManyAttempts
from .store import transaction

WINDOW = timedelta(minutes=15)  # the first wait
MAX_WAIT = timedelta(hours=24)
# Long enough for the doubling waits (15 min, 30 min, ... 16 h) to reach MAX_WAIT.
MEMORY = 2 * MAX_WAIT
# "client": any user name from one address; "account": one user name from one address.
LIMITS = {"client": 30, "account": 5}
MESSAGES = {"client": "Too many failed sign-ins from your address; try again in {} minutes.",
            "account": "Too many failed sign-ins; try again in {} minutes."}


@dataclass(frozen=True)
class Attempt:
    """A sign-in in progress: the keys it counts against and its rows."""
    keys: dict[str, str]
    rows: tuple[int, ...]


def _client(address: str) -> str:
    """Who a failure is charged to: the address, or for IPv6 its /64, which
    one subscriber usually holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (address or "unknown")[:64]
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _keys(username: str, address: str) -> dict[str, str]:
    client = _client(address)
    name = (username or "").lower()[:64]
    return {"client": f"client:{client}", "account": f"account:{client}|{name}"}


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _wait(failures: int, limit: int) -> timedelta:
    if failures < limit:
        return timedelta(0)
    return min(WINDOW * 2 ** min(failures - limit, 16), MAX_WAIT)


def begin(db, username: str, address: str) -> Attempt:
    """Refuse a blocked client (TooManyAttempts), else record the attempt as failed for now."""
    # Counted from the start, in the same transaction as the check, so a burst
    # of parallel guesses cannot all pass the check before any is recorded.
    keys = _keys(username, address)
    moment = datetime.now(timezone.utc)
    with transaction(db):
        db.execute("DELETE FROM login_failures WHERE at <= ?", [_stamp(moment - MEMORY)])
        for kind, key in keys.items():
            failures, last = db.execute(
                "SELECT count(*), max(at) FROM login_failures WHERE key = ?", [key]).fetchone()
            wait = _wait(failures, LIMITS[kind])
            left = datetime.fromisoformat(last) + wait - moment if wait else timedelta(0)
            if left > timedelta(0):
                raise TooManyAttempts(MESSAGES[kind].format(math.ceil(left.total_seconds() / 60)))
        rows = tuple(db.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)",
                                [key, _stamp(moment)]).lastrowid for key in keys.values())
    return Attempt(keys, rows)


def succeeded(db, attempt: Attempt) -> None:
    """Take back a successful attempt and forget that name's failures from this client."""
    # The client's own count stays: a success for one name does not excuse guesses at others.
    with transaction(db):
        marks = ", ".join("?" * len(attempt.rows))
        db.execute(f"DELETE FROM login_failures WHERE rowid IN ({marks})", list(attempt.rows))
        db.execute("DELETE FROM login_failures WHERE key = ?", [attempt.keys["account"]])
