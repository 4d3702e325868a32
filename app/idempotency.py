"""Idempotency keys for API creates: a client that retries a request with
the same Idempotency-Key and the same body gets the first answer again, not
a second instance. The same key with another body is refused, and so is a
retry while the first request is still running. A key is remembered for
WARREN_API_IDEMPOTENCY_HOURS; a request that failed with an error created
nothing, so its key is forgotten and may be used again."""
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .config import current_settings
from .errors import Conflict, ValidationError
from .store import get_db, now, transaction

MAX_KEY = 200


@dataclass
class Outcome:
    """The answer a request gave (or gives again): status, body, Location."""
    status: int | None = None
    body: dict | None = None
    location: str | None = None
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same one."""
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


@contextmanager
def once(user: dict, key: str | None, print_: str):
    """Run the block once per key: yields an Outcome the block fills in, or,
    for a key seen before with the same request, the first Outcome with
    replayed=True (the block must then return it as it is)."""
    if key is None:
        yield Outcome()
        return
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ValidationError({"Idempotency-Key": [f"Use 1 to {MAX_KEY} printable characters."]})
    db = get_db()
    cutoff = (datetime.now(timezone.utc)
              - timedelta(hours=current_settings().api_idempotency_hours)).isoformat(timespec="seconds")
    with transaction(db):
        db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [cutoff])
        row = db.execute("SELECT fingerprint, status, body, location FROM idempotency_keys "
                         "WHERE user_id = ? AND key = ?", [user["id"], key]).fetchone()
        if row is None:
            db["idempotency_keys"].insert({"user_id": user["id"], "key": key,
                                           "fingerprint": print_, "created_at": now()})
    if row is not None:
        if row[0] != print_:
            raise Conflict("This Idempotency-Key was used with another request; use a new key.")
        if row[1] is None:
            raise Conflict("A request with this Idempotency-Key is still running; retry shortly.")
        yield Outcome(row[1], json.loads(row[2]), row[3], replayed=True)
        return
    outcome = Outcome()
    try:
        yield outcome
    except BaseException:
        db.execute("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ?", [user["id"], key])
        raise
    db.execute("UPDATE idempotency_keys SET status = ?, body = ?, location = ? WHERE user_id = ? "
               "AND key = ?", [outcome.status, json.dumps(outcome.body), outcome.location,
                               user["id"], key])
