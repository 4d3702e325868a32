"""Members' saved SSH keys: the keys offered on the request form, and the
keys Warren's SSH jump server accepts for the member (sshjump.py reads them
at every connection, so adding or removing one takes effect at once)."""
from . import audit, sshkeys
from .errors import NotFound, ValidationError
from .store import get_db, now, transaction


def saved_keys(user_id: int) -> list[dict]:
    """The member's stored SSH keys, oldest first."""
    return list(get_db()["ssh_keys"].rows_where("user_id = ?", [user_id], order_by="id"))


def add_keys(user: dict, text: str) -> int:
    """Save the pasted public keys (one per line); every bad line is
    reported at once and nothing is saved then. Returns how many were new."""
    keys, problems = sshkeys.parse_keys(text or "")
    if not keys and not problems:
        problems = ["Paste at least one SSH public key."]
    if problems:
        raise ValidationError({"keys": problems})
    db = get_db()
    with transaction(db):
        added = sum(db.execute("INSERT OR IGNORE INTO ssh_keys (user_id, fingerprint, public_key, "
                               "created_at) VALUES (?, ?, ?, ?)",
                               [user["id"], key.fingerprint, key.line, now()]).rowcount for key in keys)
        audit.record(db, user["username"], "key.add", ", ".join(key.fingerprint for key in keys),
                     member=user["username"])
    return added


def remove_key(user: dict, key_id) -> dict:
    """Forget one of the member's keys (NotFound for anyone else's). Keys
    already inside instances stay there: the member removes them there."""
    db = get_db()
    rows = list(db["ssh_keys"].rows_where("id = ? AND user_id = ?", [key_id, user["id"]]))
    if not rows:
        raise NotFound("No such key.")
    with transaction(db):
        db.execute("DELETE FROM ssh_keys WHERE id = ?", [rows[0]["id"]])
        audit.record(db, user["username"], "key.remove", rows[0]["fingerprint"], member=user["username"])
    return rows[0]
