"""Sign-in throttling kept in the database, so it holds across every
gunicorn worker: too many failures for a user name, or from one client
address, within the window block further attempts until the window passes."""
from datetime import datetime, timedelta, timezone

from .errors import TooManyAttempts
from .store import transaction

WINDOW = timedelta(minutes=15)
LIMITS = {"user": 5, "address": 20}


def _keys(username: str, address: str) -> dict[str, str]:
    return {"user": f"user:{(username or '').lower()[:64]}", "address": f"address:{address}"}


def _since() -> str:
    return (datetime.now(timezone.utc) - WINDOW).isoformat(timespec="seconds")


def check(db, username: str, address: str) -> None:
    """Raise TooManyAttempts when the user name or the address is blocked."""
    since = _since()
    for kind, key in _keys(username, address).items():
        failures = db.execute("SELECT count(*), min(at) FROM login_failures WHERE key = ? AND at > ?",
                              [key, since]).fetchone()
        if failures[0] >= LIMITS[kind]:
            oldest = datetime.fromisoformat(failures[1])
            minutes = max(1, int((oldest + WINDOW - datetime.now(timezone.utc)).total_seconds() // 60) + 1)
            raise TooManyAttempts(f"Too many failed sign-ins; try again in {minutes} minutes.")


def record_failure(db, username: str, address: str) -> None:
    """Count one failed sign-in against the user name and the address."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with transaction(db):
        for key in _keys(username, address).values():
            db.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", [key, stamp])
        db.execute("DELETE FROM login_failures WHERE at <= ?", [_since()])


def clear(db, username: str) -> None:
    """Forget a user name's failures after a successful sign-in."""
    db.execute("DELETE FROM login_failures WHERE key = ?", [_keys(username, "")["user"]])
