"""The audit log: every state change, who asked for it, on what, when, and
how it ended (ok, refused with the reason, or failed with the reason).

Entries are plain text (names, not row ids), so they outlive the members
and instances they speak of; each also carries the id of the member's
account (ids are never reused), so a member's own history stays theirs and
a later account that takes a deleted member's name sees none of it. Admins
see every entry; members see the entries about themselves.

Every field is bounded and stripped of control characters before it is
stored, whatever the caller passes: input never reaches the log raw.
"""
import re
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import WarrenError, status_for
from .store import now

WORKER = "warren"  # the actor of what the worker decides by itself (leases, repairs)
FILTERS = ("actor", "member", "action", "result")
PAGE = 200
# The longest text kept per field; more is cut with a note of how much.
LIMITS = {"actor": 64, "member": 64, "action": 64, "target": 300, "detail": 1000}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# The API token a request acts through (its name), set by the API for the
# request's length: every entry made meanwhile says which token acted.
VIA: ContextVar[str | None] = ContextVar("audit_via", default=None)


def bounded(text: str | None, limit: int) -> str | None:
    """Text as the audit log keeps it: no control characters, at most
    `limit` characters (a cut says how many were left out)."""
    if text is None:
        return None
    text = CONTROL.sub("?", str(text))
    if len(text) <= limit:
        return text
    keep = limit - 40  # room for the note
    return text[:keep] + f"… ({len(text) - keep} more characters)"


def actor_name(user: dict | None) -> str:
    """How an actor is written: the user name, or 'warren' for Warren itself."""
    return user["username"] if user else WORKER


def record(db, actor: str, action: str, target: str, result: str = "ok", *,
           member: str | None = None, detail: str = "") -> None:
    """Append one entry (inside the caller's transaction when there is one);
    the member's account is looked up by name now, while it exists."""
    entry = {key: bounded(value, LIMITS[key]) for key, value in
             (("actor", actor), ("member", member), ("action", action), ("target", target),
              ("detail", detail))}
    account = None
    if entry["member"] is not None:
        found = db.execute("SELECT id FROM users WHERE username = ?", [entry["member"]]).fetchone()
        account = found[0] if found else None
    via = VIA.get()
    db["audit"].insert({"at": now(), **entry, "member_id": account, "result": result,
                        "via": bounded(f"token {via}", LIMITS["actor"]) if via else None})


def outcome(error: WarrenError) -> str:
    """'refused' for errors the asker can act on (4xx), 'failed' for the rest."""
    return "refused" if status_for(error) < 500 else "failed"


@contextmanager
def audited(db, actor: str, action: str, target: str, *, member: str | None = None,
            detail: str = ""):
    """Record the block's outcome: ok when it returns, refused/failed with
    the reason when it raises a WarrenError (which is then re-raised).

    The entry is written after the block, so a refusal is recorded even
    though the block's own transaction was rolled back. The block may set
    note["detail"] to say what it did."""
    note = {"detail": detail}
    try:
        yield note
    except WarrenError as error:
        record(db, actor, action, target, outcome(error), member=member,
               detail=f"{note['detail']}: {error}" if note["detail"] else str(error))
        raise
    record(db, actor, action, target, member=member, detail=note["detail"])


def entries(db, filters: dict | None = None, member_id: int | None = None, limit: int = PAGE,
            offset: int = 0) -> list[dict]:
    """The newest entries first, narrowed by exact-match filters (see
    FILTERS) and an optional 'since' date; `member_id` limits them to the
    entries about one member's account (never matched by name)."""
    clauses, values = [], []
    for key in FILTERS:
        value = (filters or {}).get(key)
        if value:
            clauses.append(f"{key} = ?")
            values.append(value)
    since = (filters or {}).get("since")
    if since:
        clauses.append("at >= ?")
        values.append(since)
    if member_id is not None:
        clauses.append("member_id = ?")
        values.append(member_id)
    where = " AND ".join(clauses) or None
    return list(db["audit"].rows_where(where, values, order_by="id DESC", limit=limit,
                                        offset=offset))


def choices(db) -> dict[str, list[str]]:
    """The values each filter can take, for the filter form."""
    return {key: [row[0] for row in db.execute(
        f"SELECT DISTINCT {key} FROM audit WHERE {key} IS NOT NULL ORDER BY 1")]
        for key in FILTERS}
