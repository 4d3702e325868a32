"""Personal access tokens for the JSON API: a name, a scope, an expiry.

Only the token's SHA-256 is stored; the token is returned once, when it is
made, and cannot be shown again. A token acts as its owner, never beyond
its scope: `read` may only read, `member` may do what the member does in
the web UI, `admin` also what an admin does (and only while its owner is an
admin). Every use is counted (last use, from where, how often) and limited
to WARREN_API_RATE_PER_MINUTE per token (token_uses.py, without a write per
request); what a token does is audited with its name (audit.py's `via`).
"""
import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone

from . import accounts, audit, token_uses
from .config import current_settings
from .errors import AuthenticationFailed, Forbidden, NotFound, TooManyAttempts, ValidationError
from .store import get_db, now, select_rows, transaction

SCOPES = ("read", "member", "admin")
PREFIX = "wrn_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
MAX_DAYS = 366
DEFAULT_DAYS = 90
SHOWN = ("id", "name", "prefix", "scope", "created_at", "expires_at", "revoked_at",
         "last_used_at", "last_used_from", "uses")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: dict) -> dict:
    return {key: row[key] for key in SHOWN}


def allows(scope: str, needed: str) -> bool:
    """Whether a token of `scope` may do what needs `needed`."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def of_member(user: dict) -> list[dict]:
    """The member's tokens, newest first (revoked ones too), without secrets."""
    return [_public(row) for row in get_db()["api_tokens"].rows_where(
        "user_id = ?", [user["id"]], order_by="id DESC")]


def create(user: dict, name: str, scope: str, days) -> tuple[dict, str]:
    """Make a token; every field error at once. Returns the row and the
    token itself, which is never shown again."""
    name = (name or "").strip()
    db = get_db()
    with audit.audited(db, user["username"], "token.create", name or "-", member=user["username"],
                       detail=f"scope {scope}, {days} days"):
        errors = {}
        if not NAME.fullmatch(name):
            errors["name"] = ["Use 1 to 64 letters, digits, spaces, dots, hyphens or underscores, "
                              "starting with a letter or digit."]
        if scope not in SCOPES:
            errors["scope"] = [f"Choose one of {', '.join(SCOPES)}."]
        elif scope == "admin" and user["role"] != "admin":
            errors["scope"] = ["Only admins may make admin tokens."]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            errors["days"] = [f"Give a whole number of days from 1 to {MAX_DAYS}."]
        if errors:
            raise ValidationError(errors)
        token = PREFIX + secrets.token_urlsafe(32)
        expires = (datetime.now(timezone.utc) + timedelta(days=days)).isoformat(timespec="seconds")
        with transaction(db):
            if db["api_tokens"].count_where("user_id = ? AND name = ?", [user["id"], name]):
                raise ValidationError({"name": [f"You already have a token named {name}."]})
            token_id = db["api_tokens"].insert({
                "user_id": user["id"], "name": name, "token_hash": _digest(token),
                "prefix": token[:len(PREFIX) + 6], "scope": scope, "created_at": now(),
                "expires_at": expires}).last_pk
    return _public(db["api_tokens"].get(token_id)), token


def revoke(user: dict, token_id) -> dict:
    """Revoke one of the member's tokens (NotFound for anyone else's); it
    stops working at once."""
    db = get_db()
    rows = list(db["api_tokens"].rows_where("id = ? AND user_id = ?", [token_id, user["id"]]))
    if not rows:
        raise NotFound("No such token.")
    with transaction(db):
        db.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                   [now(), rows[0]["id"]])
        audit.record(db, user["username"], "token.revoke", rows[0]["name"], member=user["username"])
    return _public(db["api_tokens"].get(rows[0]["id"]))


def authenticate(token: str, address: str) -> tuple[dict, dict]:
    """The owner and the token row for a presented token, counted against
    its rate limit; AuthenticationFailed for an unknown, revoked or expired
    token or a disabled owner, TooManyAttempts past the limit."""
    db = get_db()
    rows = select_rows(db, "SELECT * FROM api_tokens WHERE token_hash = ?", [_digest(token or "")])
    row = rows[0] if rows else None
    stamp = now()
    if row is None or row["revoked_at"] or row["expires_at"] <= stamp:
        raise AuthenticationFailed("The API token is unknown, revoked or expired.")
    try:
        user = accounts.get_user(row["user_id"])
    except NotFound:
        raise AuthenticationFailed("The API token is unknown, revoked or expired.") from None
    if user["disabled"]:
        raise AuthenticationFailed("The API token is unknown, revoked or expired.")
    settings = current_settings()
    limit = settings.api_rate_per_minute
    if token_uses.record(db, settings.database, row["id"], stamp, address or "", limit) > limit:
        raise TooManyAttempts(f"Too many requests with the token {row['name']}: at most "
                              f"{limit} a minute. Try again in a minute.")
    return user, row


def require(token_row: dict, user: dict, needed: str) -> None:
    """Refuse what the token's scope does not cover. Admin work with a
    token whose owner is not an admin is NotFound, as in the web UI."""
    if needed == "admin" and user["role"] != "admin":
        raise NotFound("Not found.")
    if not allows(token_row["scope"], needed):
        raise Forbidden(f"The token {token_row['name']} has the {token_row['scope']} scope; this "
                        f"needs {needed}.")
