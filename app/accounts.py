"""Accounts: members and admins, their passwords and their sessions."""
import re
import secrets

from . import audit, passwords, sessions, throttle
from .errors import AuthenticationFailed, Conflict, NotFound, ValidationError
from .names import reserved_username
from .store import get_db, new_id, now, select_rows, transaction

ROLES = ("member", "admin")
# A user name becomes a DNS label (web.alice.zone) and part of an LXD project
# name, so it is held to the stricter of the two.
USERNAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


def check_username(username: str, allow_reserved: bool = False) -> list[str]:
    if not USERNAME.fullmatch(username or ""):
        return ["Use 2 to 32 lower-case letters, digits or hyphens, starting with a letter "
                "and not ending with a hyphen."]
    if "--" in username:
        return ["Two hyphens in a row are not allowed."]
    if not allow_reserved and (reason := reserved_username(username)):
        return [f"{username} is reserved ({reason}); choose another name."]
    return []


def _check_password(password: str) -> list[str]:
    if len(password or "") < MIN_PASSWORD:
        return [f"Use at least {MIN_PASSWORD} characters."]
    if len(password) > MAX_PASSWORD:
        return [f"Use at most {MAX_PASSWORD} characters."]
    return []


def create_user(username: str, password: str, role: str = "member", tier: str = "full",
                actor: str = "cli", allow_reserved: bool = False) -> dict:
    """Create an account; every invalid field is reported at once. Reserved
    names are refused, except for the first admin named in the settings."""
    errors = {}
    for field, problems in (("username", check_username(username, allow_reserved)),
                            ("password", _check_password(password)),
                            ("role", [] if role in ROLES else [f"Choose one of {', '.join(ROLES)}."])):
        if problems:
            errors[field] = problems
    if errors:
        raise ValidationError(errors)
    password_hash = passwords.hash_password(password)
    db = get_db()
    with transaction(db):
        if db["users"].count_where("username = ?", [username]):
            raise Conflict(f"The user name {username!r} is already taken.")
        if not db["tiers"].count_where("name = ?", [tier]):
            raise ValidationError({"tier": [f"There is no tier {tier!r}."]})
        user_id = _insert(db, username, password_hash, role, tier, actor)
    return get_user(user_id)


def _insert(db, username: str, password_hash: str, role: str, tier: str, actor: str,
            note: str = "") -> int:
    """Insert the account row and its audit entry (inside the caller's
    transaction); its id, never a deleted member's: history stays theirs."""
    stamp = now()
    user_id = new_id(db, "users")
    db["users"].insert({
        "id": user_id, "username": username, "password_hash": password_hash, "role": role,
        "tier": tier, "disabled": 0, "created_at": stamp, "password_changed_at": stamp,
    })
    audit.record(db, actor, "account.create", username, member=username,
                 detail=f"role {role}, tier {tier}{note}")
    return user_id


NO_PASSWORD = "!"  # not an argon2 hash: no password signs in until one is set


def add_account_without_password(db, username: str, role: str, tier: str, actor: str) -> dict:
    """Insert an account no password opens yet (an event's team, whose link
    sets one), inside the caller's transaction; the caller checked the name."""
    user_id = _insert(db, username, NO_PASSWORD, role, tier, actor, ", no password yet")
    return {"id": user_id, "username": username}


def _public(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "password_hash"}


def get_user(user_id: int) -> dict:
    """The account with this id (without its hash)."""
    rows = select_rows(get_db(), "SELECT * FROM users WHERE id = ?", [user_id])
    if not rows:
        raise NotFound("No such user.")
    return _public(rows[0])


def find_user(username: str) -> dict:
    """The account with this name (without its hash)."""
    rows = list(get_db()["users"].rows_where("username = ?", [username]))
    if not rows:
        raise NotFound(f"No user named {username!r}.")
    return _public(rows[0])


def list_users() -> list[dict]:
    """Every account, by name."""
    return [_public(row) for row in get_db()["users"].rows_where(order_by="username")]


def authenticate(username: str, password: str) -> dict:
    """The account for these credentials; one vague error for every failure."""
    db = get_db()
    rows = list(db["users"].rows_where("username = ?", [username or ""]))
    row = rows[0] if rows else None
    ok = passwords.verify_password(row["password_hash"] if row else None, password or "")
    if not ok or row["disabled"]:
        raise AuthenticationFailed("Wrong user name or password, or the account is disabled.")
    if passwords.needs_rehash(row["password_hash"]):
        db["users"].update(row["id"], {"password_hash": passwords.hash_password(password)})
    return _public(row)


def sign_in(username: str, password: str, address: str) -> dict:
    """authenticate(), throttled per client address and per user name from
    that address; a blocked client is refused before any password hashing."""
    db = get_db()
    attempt = throttle.begin(db, username, address)
    user = authenticate(username, password)  # on failure the attempt stays counted
    throttle.succeeded(db, attempt)
    return user


def set_password(user_id: int, password: str, keep_session: str | None = None,
                 actor: str | None = None) -> None:
    """Change a password and revoke the user's sessions (except keep_session);
    `actor` is who did it (the user themself when not given)."""
    problems = _check_password(password)
    if problems:
        raise ValidationError({"password": problems})
    user = get_user(user_id)
    db = get_db()
    with transaction(db):
        db["users"].update(user_id, {"password_hash": passwords.hash_password(password),
                                     "password_changed_at": now()})
        sessions.revoke_user_sessions(db, user_id, keep=keep_session)
        audit.record(db, actor or user["username"], "account.password", user["username"],
                     member=user["username"], detail="sessions signed out")


def ensure_admin(username: str, password: str = "") -> str | None:
    """Create the first admin unless an admin exists; return a generated
    password (to be shown once), or None when nothing was generated."""
    db = get_db()
    if db["users"].count_where("role = 'admin'"):
        return None
    generated = None if password else secrets.token_urlsafe(15)
    create_user(username, password or generated, role="admin", allow_reserved=True)
    return generated
