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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import accounts, audit, jobs, lxd, projects, quotas, sessions
from .config import current_settings
from .errors import BackendUnavailable, Conflict, NotFound, ValidationError, WarrenError
from .names import project_name
from .passes import each_guarded
from .profiles import current_profiles
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


def _fit_problems(db, user: dict, quota: quotas.Quota) -> list[str]:
    """Why a member's current instances would not fit a new quota."""
    used = quotas.usage(db, user["id"])
    problems = [f"{label}: uses {used_text}, the new allowance is {allowed}"
                for label, used_text, allowed in quotas.exceeded(quota, used)]
    if not quota.nesting:
        profiles = current_profiles()
        nested = [row["name"] for row in db["instances"].rows_where(
            "user_id = ? AND status NOT IN ('failed', 'denied')", [user["id"]])
            if profiles.get(row["profile"]) is not None and profiles[row["profile"]].nesting]
        if nested:
            problems.append(f"nesting: {', '.join(nested)} use(s) a nesting profile")
    return problems


@dataclass
class ShareChange:
    """Members whose share changes in one transaction, and how LXD took it."""
    members: list[str] = field(default_factory=list)  # whose LXD projects must follow
    projects: list[str] = field(default_factory=list)  # the LXD projects updated
    unreachable: str | None = None  # why LXD could not be asked; its next pass applies it


@contextmanager
def share_change(db):
    """A transaction for share changes (the block adds the members it
    changes to `members`), applied to those members' LXD projects before
    it commits. If LXD refuses, nothing is saved: the transaction rolls
    back, the projects get the old limits again, and the error gives LXD's
    reason. If LXD cannot be reached, the change is saved and the worker's
    next pass brings the projects in line."""
    change, refused = ShareChange(), []
    try:
        with transaction(db):
            yield change
            if change.members:
                try:
                    change.projects = projects.sync_existing(current_settings(), db, change.members)
                except BackendUnavailable as error:
                    log.warning("LXD projects of %s follow later: %s", ", ".join(change.members), error)
                    change.unreachable = str(error)
                except WarrenError as error:
                    refused.append(error)
                    raise
    except WarrenError as error:
        if not refused or error is not refused[0]:
            raise
        try:  # LXD may have taken part of it (the project, not a profile): put the old back
            projects.sync_existing(current_settings(), db, change.members)
        except WarrenError as again:
            log.warning("LXD projects of %s not put back now (the worker's next pass does): %s",
                        ", ".join(change.members), again)
        if isinstance(error, ValidationError):
            raise  # a bad profile file, not LXD: nothing was saved either
        raise type(error)(f"LXD refused the new limits, so nothing was saved: {error}") from error


def change_share(db, username: str, tier: str, overrides: dict) -> quotas.Quota:
    """Inside the caller's share_change: give a member a tier and exactly
    these overrides. Refused, naming each bound or resource, if a value is
    out of bounds or their instances would not fit."""
    quotas.check_bounds(overrides)
    if tier not in quotas.tiers(db):
        raise ValidationError({"tier": [f"Choose one of {', '.join(quotas.tiers(db))}."]})
    user = accounts.find_user(username)
    candidate = {**user, "tier": tier, "quota_overrides": json.dumps(overrides)}
    quota = quotas.quota_for(db, candidate)
    problems = _fit_problems(db, user, quota)
    if problems:
        raise Conflict(f"{username}'s instances would not fit: " + "; ".join(problems)
                       + ". Lower their use first or choose more.")
    db["users"].update(user["id"], {"tier": tier,
                                    "quota_overrides": json.dumps(overrides, sort_keys=True)})
    return quota


def set_quota(actor: dict, username: str, tier: str,
              overrides: dict) -> tuple[quotas.Quota, ShareChange]:
    """Give a member a tier and exactly these overrides (others follow the
    tier). Refused, naming each resource, if their instances would not fit,
    and not saved if LXD refuses the new limits for their project."""
    db = get_db()
    accounts.find_user(username)
    with audit.audited(db, actor["username"], "account.quota", username, member=username,
                       detail=f"tier {tier}, overrides {json.dumps(overrides, sort_keys=True)}"):
        with share_change(db) as change:
            quota = change_share(db, username, tier, overrides)
            change.members.append(username)
    return quota, change


def set_tier(actor: dict, name: str, values: dict) -> tuple[quotas.Quota, ShareChange]:
    """Create a tier or change some of its values; refused, naming the
    members, if the instances of a member on the tier would not fit, and
    not saved if LXD refuses the new limits for any of their projects."""
    db = get_db()
    with audit.audited(db, actor["username"], "tier.set", name or "-",
                       detail=json.dumps(values, sort_keys=True, default=str)):
        with share_change(db) as change:
            quota = quotas.set_tier(db, name, values)
            over = []
            for user in list(db["users"].rows_where("tier = ? AND deleting = 0", [name],
                                                    order_by="username")):
                problems = _fit_problems(db, user, quotas.quota_for(db, user))
                if problems:
                    over.append(f"{user['username']} ({'; '.join(problems)})")
                change.members.append(user["username"])
            if over:
                raise Conflict("Instances would not fit: " + ", ".join(over) + ".")
    return quota, change


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
                if row["status"] != "deleting":
                    db["instances"].update(row["id"], {"status": "deleting", "updated_at": now()})
                    jobs.enqueue(db, row["id"], "delete")
    jobs.wake_worker(current_settings())
    return count


def finish_deletions(db, settings) -> list[str]:
    """Remove the LXD project and the account of members being deleted
    whose instances are all gone (run by the worker; each member in its own
    guard)."""
    def finish(user):
        if db["instances"].count_where("user_id = ?", [user["id"]]):
            return None
        try:
            lxd.delete_project(settings.lxd_socket, project_name(user["username"]))
        except WarrenError as error:
            audit.record(db, audit.WORKER, "account.deleted", user["username"], "failed",
                         member=user["username"], detail=str(error))
            raise
        projects.forget_applied(project_name(user["username"]))
        with transaction(db):
            audit.record(db, audit.WORKER, "account.deleted", user["username"],
                         member=user["username"], detail="instances, DNS names, LXD project "
                         "and account removed")
            for table in ("ssh_keys", "approvals", "sessions"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", [user["id"]])
            db.execute("DELETE FROM users WHERE id = ?", [user["id"]])
        return user["username"]

    return [name for name in each_guarded(list(db["users"].rows_where("deleting = 1")),
                                          lambda user: f"deleting member {user['username']}", finish)
            if name]
