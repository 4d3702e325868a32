"""Member administration: create and invite, shares and overrides, disable,
re-enable and delete. Every action is audited with the admin who did it.

Deleting a member is durable: the account is disabled and marked, each of
its instances gets a delete job (DNS name and LXD instance go), and the
worker removes the LXD project and the account once no instance is left
(finish_deletions), after a crash too.
"""
import hashlib
import json
import logging
import secrets
import threading
from datetime import datetime, timedelta, timezone

from . import accounts, audit, jobs, lxd, projects, quotas, records, sessions
from .config import current_settings
from .errors import Conflict, NotFound, ValidationError, WarrenError
from .names import project_name
from .passes import each_guarded
from .statuses import BUSY, DELETING, READY
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
INVITE_HOURS = 72
CLI = {"id": None, "username": "cli"}  # the actor of `flask user ...` commands


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def overview() -> list[dict]:
    """Every account with its share, quota and current use, by name."""
    db = get_db()
    rows = []
    for user in accounts.list_users():
        rows.append({**user, "quota": quotas.quota_for(db, user),
                     "used": quotas.usage(db, user["id"]),
                     "overrides": overrides_of(user)})
    return rows


def overrides_of(user: dict) -> dict:
    """A member's own quota values (on top of their tier)."""
    return json.loads(user["quota_overrides"] or "{}")


def create_member(actor: dict, username: str, password: str, role: str, tier: str) -> dict:
    """Create an account with a password the admin hands over."""
    username = (username or "").strip().lower()
    try:
        return accounts.create_user(username, password, role, tier, actor=actor["username"])
    except WarrenError as error:  # success is recorded by create_user itself
        audit.record(get_db(), actor["username"], "account.create", username or "-",
                     audit.outcome(error), detail=str(error))
        raise


def invite(actor: dict, role: str, tier: str, hours: int = INVITE_HOURS) -> str:
    """A one-time sign-up token (the invitee picks name and password)."""
    db = get_db()
    errors = {}
    if role not in accounts.ROLES:
        errors["role"] = [f"Choose one of {', '.join(accounts.ROLES)}."]
    if tier not in quotas.tiers(db):
        errors["tier"] = [f"Choose one of {', '.join(quotas.tiers(db))}."]
    if errors:
        raise ValidationError(errors)
    token = secrets.token_urlsafe(24)
    expires = (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat(timespec="seconds")
    with transaction(db):
        db["invites"].insert({"token_hash": _digest(token), "role": role, "tier": tier,
                              "created_by": actor["username"], "created_at": now(),
                              "expires_at": expires})
        audit.record(db, actor["username"], "account.invite", f"{role}, tier {tier}",
                     detail=f"valid until {expires}")
    return token


def invitation(token: str) -> dict:
    """The open invitation behind a token; NotFound when unknown, used or expired."""
    rows = list(get_db()["invites"].rows_where("token_hash = ?", [_digest(token or "")]))
    if not rows or rows[0]["used_at"] or rows[0]["expires_at"] < now():
        raise NotFound("This invitation link is unknown, used already, or expired; ask an admin "
                       "for a new one.")
    return rows[0]


def accept_invite(token: str, username: str, password: str) -> dict:
    """Create the invited account; the link works once."""
    invite_row = invitation(token)
    username = (username or "").strip().lower()
    user = accounts.create_user(username, password, invite_row["role"], invite_row["tier"],
                                actor=username)
    db = get_db()
    with transaction(db):
        used = db.execute("UPDATE invites SET used_by = ?, used_at = ? WHERE token_hash = ? "
                          "AND used_at IS NULL", [username, now(), invite_row["token_hash"]]).rowcount
        if not used:  # a second tab used it meanwhile: the account must not stay
            db["users"].delete(user["id"])
            raise NotFound("This invitation link was used already.")
        audit.record(db, username, "account.accept-invite", username, member=username,
                     detail=f"invited by {invite_row['created_by']}")
    return user


def _guard_self(actor: dict, username: str, what: str) -> dict:
    user = accounts.find_user(username)
    if user["id"] == actor["id"]:
        raise Conflict(f"You cannot {what} your own account; ask another admin.")
    return user


def disable(actor: dict, username: str) -> int:
    """Sign the member out, block sign-in, stop their running instances;
    returns how many stops were queued."""
    db = get_db()
    with audit.audited(db, actor["username"], "account.disable", username, member=username):
        user = _guard_self(actor, username, "disable")
        with transaction(db):
            db["users"].update(user["id"], {"disabled": 1})
            sessions.revoke_user_sessions(db, user["id"])
            # Instances still being built are stopped once they are up (jobs of
            # one instance run in order).
            running = (READY,) + tuple(status for status in BUSY if status != DELETING)
            ready = [row["id"] for row in db["instances"].rows_where(
                f"user_id = ? AND status IN ({', '.join('?' for _ in running)})",
                [user["id"], *running])]
            for instance_id in ready:
                jobs.enqueue(db, instance_id, "stop")
    jobs.wake_worker(current_settings())
    return len(ready)


def enable(actor: dict, username: str) -> None:
    """Let a disabled member sign in again (their instances stay stopped)."""
    db = get_db()
    with audit.audited(db, actor["username"], "account.enable", username, member=username):
        user = accounts.find_user(username)
        if user["deleting"]:
            raise Conflict(f"{username} is being deleted.")
        db["users"].update(user["id"], {"disabled": 0})


def delete_member(actor: dict, username: str, confirmation: str) -> int:
    """Delete a member with everything they have, after they typed the name;
    returns how many instances are being deleted."""
    db = get_db()
    with audit.audited(db, actor["username"], "account.delete", username, member=username):
        if (confirmation or "").strip() != username:
            raise ValidationError({"confirmation": [f"Type {username} to confirm."]})
        user = _guard_self(actor, username, "delete")
        with transaction(db):
            db["users"].update(user["id"], {"disabled": 1, "deleting": 1})
            sessions.revoke_user_sessions(db, user["id"])
            count = 0
            for row in db["instances"].rows_where("user_id = ?", [user["id"]]):
                count += 1
                if row["status"] != DELETING:
                    db["instances"].update(row["id"], {"status": DELETING, "updated_at": now()})
                    jobs.cancel_power(db, row["id"])
                    jobs.enqueue(db, row["id"], "delete")
    jobs.wake_worker(current_settings())
    return count


def finish_deletions(db, settings) -> list[str]:
    """Remove the LXD project and the account of members being deleted
    whose instances are all gone (run by the worker; each member in its own
    guard). One caller at a time: each job thread that deletes a member's
    last instances calls it, and two would remove one project twice."""
    with _finishing:
        return _finish_deletions(db, settings)


_finishing = threading.Lock()


def _finish_deletions(db, settings) -> list[str]:
    def finish(user):
        if db["instances"].count_where("user_id = ?", [user["id"]]):
            return None
        try:
            records.withdraw_member(db, settings, user)  # raises while named is down: next pass
            lxd.delete_project(lxd.backend(settings), project_name(user["username"]))
        except WarrenError as error:
            audit.record(db, audit.WORKER, "account.deleted", user["username"], "failed",
                         member=user["username"], detail=str(error))
            raise
        projects.forget_applied(project_name(user["username"]))
        with transaction(db):
            audit.record(db, audit.WORKER, "account.deleted", user["username"],
                         member=user["username"], detail="instances, DNS names and records, LXD project "
                         "and account removed")
            for table in ("ssh_keys", "approvals", "sessions", "domains"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", [user["id"]])
            db.execute("DELETE FROM users WHERE id = ?", [user["id"]])
        return user["username"]

    return [name for name in each_guarded(list(db["users"].rows_where("deleting = 1")),
                                          lambda user: f"deleting member {user['username']}", finish)
            if name]
